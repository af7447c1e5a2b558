"""Waking a step that waits between polls, when its provider says the task may be done.

A step whose provider calls back pauses between polls through ``StepWakeups.sleep`` instead
of the clock's sleep. ``wake(step_run_id)`` ends that pause at once, and the step polls.
A wake that arrives while the step is not pausing (it is in the middle of a poll) is kept
and ends its next pause, so none is lost between two polls. Only steps ``listening`` here
keep such a flag: wakes for steps this process does not run are dropped, and memory stays
bounded by the steps in flight.

Wakes travel as ``step.wake`` events on the job event bus: the callback route publishes one
(on PostgreSQL it reaches every node by ``NOTIFY``), and ``follow`` feeds the bus of this
process into ``wake``. Where no event can arrive (SQLite with workers in other processes)
the step's slow safety-net poll still finishes it. The seam knows nothing of polling: a
pause is "wait this long on the clock, or less if woken".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from conveyor.core.clock import Clock
from conveyor.jobs.events import STEP_WAKE, EventBus

__all__ = ["StepWakeups"]


class StepWakeups:
    """Per-process: which steps wait for a callback, and waking them."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._listening: dict[str, asyncio.Event] = {}
        # Steps parked in the poll scheduler hold no coroutine to wake: a wake calls this.
        self._parked: dict[str, Callable[[], None]] = {}

    def __len__(self) -> int:
        return len(self._listening) + len(self._parked)

    def when_woken(self, step_run_id: str, action: Callable[[], None] | None) -> None:
        """Run ``action`` on a wake for this parked step (None: stop)."""
        if action is None:
            self._parked.pop(step_run_id, None)
        else:
            self._parked[step_run_id] = action

    @contextlib.contextmanager
    def listening(self, step_run_id: str) -> Iterator[None]:
        """While inside, wakes for this step are kept until its next pause."""
        self._listening[step_run_id] = asyncio.Event()
        try:
            yield
        finally:
            self._listening.pop(step_run_id, None)

    def wake(self, step_run_id: str) -> bool:
        """End the step's current (or next) pause; False if no step here listens."""
        event = self._listening.get(step_run_id)
        if event is not None:
            event.set()
            return True
        action = self._parked.get(step_run_id)
        if action is None:
            return False
        action()
        return True

    async def sleep(self, step_run_id: str, seconds: float) -> bool:
        """Wait ``seconds`` on the clock, or until woken; True if a wake ended it."""
        event = self._listening.get(step_run_id)
        if event is None:
            await self._clock.sleep(seconds)
            return False
        if not event.is_set():
            woken = asyncio.ensure_future(event.wait())
            timer = asyncio.ensure_future(self._clock.sleep(seconds))
            try:
                await asyncio.wait((woken, timer), return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                timer.cancel()
        was_woken = event.is_set()
        event.clear()
        return was_woken

    async def follow(self, events: EventBus) -> None:
        """Feed this process's ``step.wake`` events into ``wake`` (runs until cancelled)."""
        with events.subscribe() as queue:
            while True:
                event = await queue.get()
                if event.type == STEP_WAKE:
                    self.wake(str(event.data.get("step_run_id", "")))
