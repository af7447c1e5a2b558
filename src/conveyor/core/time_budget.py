"""Time budgets: seconds of work a task may take, not counting the time it waits its turn.

A ``TimeBudget`` runs a coroutine and stops it once it has *worked* for ``seconds`` on the
given clock. Time spent inside ``waiting_turn()`` — waiting for a slot of a shared resource
(a local engine's process, a provider's in-flight limit) — is not charged: a photo queued
behind ninety-nine others in a batch has waited, not worked. Overlapping waits of one task
(steps running side by side) pause the budget once, while any of them waits.

The budget in force is found through a context variable, so code deep in the call (the
process pool, the provider limits) marks its waits with ``waiting_turn()`` without knowing
who runs it or whether anyone counts; outside a budget ``waiting_turn()`` does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from conveyor.core.clock import Clock

__all__ = ["TimeBudget", "TimeBudgetExceeded", "waiting_turn"]

T = TypeVar("T")

_current: ContextVar[TimeBudget | None] = ContextVar("conveyor_time_budget", default=None)


class TimeBudgetExceeded(Exception):
    """The work ran longer than its budget and was stopped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"worked longer than {seconds:g} s")
        self.seconds = seconds


@contextlib.contextmanager
def waiting_turn() -> Iterator[None]:
    """Mark a wait for a shared resource: not charged to the current budget, if any."""
    budget = _current.get()
    if budget is None:
        yield
        return
    with budget.waiting():
        yield


class TimeBudget:
    """``seconds`` of work on ``clock`` for the coroutine given to ``run``."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("a time budget must be positive")
        self.clock = clock
        self.seconds = seconds
        self._started = clock.monotonic()
        self._waited = 0.0
        self._waits = 0
        self._wait_started = 0.0
        self._resumed = asyncio.Event()

    def used(self) -> float:
        """Seconds worked so far (waits for a turn left out)."""
        now = self.clock.monotonic()
        waiting = now - self._wait_started if self._waits else 0.0
        return now - self._started - self._waited - waiting

    @property
    def is_waiting(self) -> bool:
        """Whether the work is waiting for its turn now."""
        return self._waits > 0

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        if self._waits == 0:
            self._wait_started = self.clock.monotonic()
            self._resumed.clear()
        self._waits += 1
        try:
            yield
        finally:
            self._waits -= 1
            if self._waits == 0:
                self._waited += self.clock.monotonic() - self._wait_started
                self._resumed.set()

    async def run(self, work: Awaitable[T]) -> T:
        """``work``'s result, or ``TimeBudgetExceeded`` once it has used the budget (then
        ``work`` is cancelled and waited for)."""
        token = _current.set(self)
        try:
            # The task copies the context now: every wait inside it sees this budget.
            task = asyncio.ensure_future(work)
        finally:
            _current.reset(token)
        watchdog = asyncio.ensure_future(self._run_out())
        try:
            await asyncio.wait({task, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            watchdog.cancel()
            await asyncio.gather(task, watchdog, return_exceptions=True)
            raise
        if task.done():
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise TimeBudgetExceeded(self.seconds)

    async def _run_out(self) -> None:
        """Return when the budget is used up: sleep for what is left, and again while the
        work waits its turn or has waited meanwhile."""
        while True:
            if self._waits:
                await self._resumed.wait()
                continue
            left = self.seconds - self.used()
            if left <= 0:
                return
            await self.clock.sleep(left)
