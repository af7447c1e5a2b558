"""Time, injectable.

Domain timestamps come from ``Clock.now()``. Lease arithmetic (heartbeats, ``run_after``)
compares times written by different machines, so it uses the database's clock through
``Clock.sql_now()``; a ``ManualClock`` replaces both in tests so nothing waits for real time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Float, func, literal, literal_column
from sqlalchemy.sql.elements import ColumnElement


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime: ...

    def timestamp(self) -> float: ...

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        """Seconds since the epoch as a SQL expression."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (budgets and deadlines use it)."""
        ...


class SystemClock:
    """Wall clock here, database clock for SQL."""

    def now(self) -> datetime:
        return utc_now()

    def timestamp(self) -> float:
        return time.time()

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        if dialect == "postgresql":
            return func.cast(func.extract("epoch", func.clock_timestamp()), Float)
        # julianday('now') has sub-millisecond precision, enough for leases.
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._t = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def timestamp(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every ``sleep`` whose time has come."""
        self._t += seconds
        due = [w for w in self._sleepers if w[0] <= self._t]
        self._sleepers = [w for w in self._sleepers if w[0] > self._t]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._t + seconds, future))
        await future

    @property
    def sleepers(self) -> int:
        """How many coroutines are waiting on this clock (tests wait for them to park)."""
        return sum(1 for _, f in self._sleepers if not f.done())

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        return literal(self._t, Float)
