"""Time, injectable: one ``Clock`` serves the engine, the provider limits and the simulator.

A clock answers four questions. ``now()``/``timestamp()`` give wall time for what is
stored and shown. ``monotonic()`` gives seconds that never go back, for durations,
deadlines and rates (a poll's ``max_wait``, a token bucket); only differences between two
readings mean anything. ``sql_now()`` is the database's own clock as a SQL expression:
lease arithmetic (heartbeats, ``run_after``) compares times written by different machines.
``sleep()`` waits on this clock's time.

``SystemClock`` is the real thing. ``ManualClock`` replaces all of it in tests: it moves
only when told to, wall and monotonic time together, so nothing waits for real time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Float, func, literal, literal_column
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["Clock", "ManualClock", "SystemClock", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time, timezone-aware (UTC)."""
        ...

    def timestamp(self) -> float:
        """Wall time as seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go back, for durations and deadlines (only differences count)."""
        ...

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        """Seconds since the epoch as a SQL expression."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (budgets, deadlines, poll pauses use it)."""
        ...


class SystemClock:
    """Wall clock and ``time.monotonic`` here, database clock for SQL."""

    def now(self) -> datetime:
        return utc_now()

    def timestamp(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        if dialect == "postgresql":
            return func.cast(func.extract("epoch", func.clock_timestamp()), Float)
        # julianday('now') has sub-millisecond precision, enough for leases.
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)

    async def sleep(self, seconds: float) -> None:
        # asyncio.sleep holds no thread, so thousands of waiting polls cost only memory.
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to.

    ``advance`` moves wall time (from ``start``) and monotonic time (from
    ``monotonic_start``) by the same amount and wakes every ``sleep`` whose time has come.
    By default ``sleep`` parks until ``advance`` reaches its end, so the test decides when
    time passes. With ``sleep_advances=True`` a ``sleep`` moves the clock itself and returns
    at once: the code under test runs through its waits instantly (a poll loop against the
    simulator, a rate limiter), and ``sleeps`` tells what it waited for.
    """

    def __init__(
        self,
        start: float = 1_800_000_000.0,
        *,
        monotonic_start: float = 1_000.0,
        sleep_advances: bool = False,
    ) -> None:
        self._t = start
        self._monotonic = monotonic_start
        self.sleep_advances = sleep_advances
        self.sleeps: list[float] = []  # every duration ``sleep`` was asked for, in order
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def timestamp(self) -> float:
        return self._t

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every ``sleep`` whose time has come."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._t += seconds
        self._monotonic += seconds
        due = [w for w in self._sleepers if w[0] <= self._monotonic]
        self._sleepers = [w for w in self._sleepers if w[0] > self._monotonic]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.sleep_advances:
            self.advance(max(0.0, seconds))
            # Still yield, so code that sleeps in a loop lets other coroutines run.
            await asyncio.sleep(0)
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._monotonic + seconds, future))
        await future

    @property
    def sleepers(self) -> int:
        """How many coroutines are waiting on this clock (tests wait for them to park)."""
        return sum(1 for _, f in self._sleepers if not f.done())

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        return literal(self._t, Float)
