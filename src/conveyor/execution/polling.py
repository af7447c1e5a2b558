"""Waiting on providers without a coroutine per task: the poll scheduler.

An item whose step submitted to a pollable provider (``PollableAdapter``) *parks*: its
recipe's coroutines end, its queue task stays claimed (``TaskParked``), and a small
``Waiting`` record — the queue task id, the adapter's ``TaskWait``, when to poll next — goes
into one heap here. One loop sleeps until the earliest poll is due, polls what is due (each
poll a short-lived coroutine, limited by the provider's own limits), puts unfinished tasks
back with the adapter's next pause, and when a task is final resumes the item
(``Worker.resume``) with a ``StepNews``: the recipe runs again from the top, its finished
steps come back from the database, and the waiting step collects the result, raises the
provider's error, or stops for a cancel. Nothing is lost on a restart: the task id was
committed before the first poll, and a resumed item parks again.

Cancellation is checked before every poll (``CancellationWatch``); a task past its
``deadline`` is cancelled at the provider and reported as timed out. A provider's callback
for a parked step (``StepWakeups.wake``) makes its next poll due at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor.core.clock import Clock
from conveyor.execution.cancellation import CancellationWatch
from conveyor.execution.wakeups import StepWakeups
from conveyor.providers.base import PollableAdapter, PollResult, TaskWait

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Waiting:
    """One parked item: which queue task to resume, and what it waits on."""

    task_id: int
    job_id: str
    step_run_id: str
    adapter: PollableAdapter
    wait: TaskWait
    # Bumped when the poll is moved earlier: heap entries of older versions are stale.
    version: int = 0
    # A wake came while its poll was running: poll again at once after it.
    woken: bool = False
    queued: bool = False


@dataclass(frozen=True, slots=True)
class StepNews:
    """What the scheduler found for the step that parked: the final poll (``result``), or
    that the job was cancelled (``result`` is None)."""

    step_run_id: str
    result: PollResult | None


@dataclass(order=True, slots=True)
class _Due:
    at: float
    order: int
    waiting: Waiting = field(compare=False)
    version: int = field(default=0, compare=False)


Resume = Callable[[int, StepNews], bool]


class PollScheduler:
    def __init__(
        self,
        clock: Clock,
        watch: CancellationWatch,
        *,
        resume: Resume,
        is_parked: Callable[[int], bool],
        wakeups: StepWakeups | None = None,
    ) -> None:
        self._clock = clock
        self._watch = watch
        self._wakeups = wakeups
        self._resume = resume
        self._is_parked = is_parked
        self._heap: list[_Due] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()
        self._polls: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._heap) + len(self._polls)

    def park(self, waiting: Waiting) -> None:
        """Start watching ``waiting``: first poll after its ``wait.pause``."""
        if self._wakeups is not None:
            self._wakeups.when_woken(waiting.step_run_id, lambda: self._poll_now(waiting))
        self._push(waiting)

    def _push(self, waiting: Waiting, *, at: float | None = None) -> None:
        when = self._clock.monotonic() + waiting.wait.pause if at is None else at
        due = _Due(when, next(self._order), waiting, waiting.version)
        waiting.queued = True
        heapq.heappush(self._heap, due)
        if self._heap[0] is due:
            self._changed.set()

    def _poll_now(self, waiting: Waiting) -> None:
        # A callback says the task may be done: poll at once (the queued entry goes stale),
        # or right after the poll running now.
        if not waiting.queued:
            waiting.woken = True
            return
        waiting.version += 1
        self._push(waiting, at=self._clock.monotonic())

    async def run(self) -> None:
        try:
            while True:
                await self._sleep_until_due()
                now = self._clock.monotonic()
                while self._heap and self._heap[0].at <= now:
                    due = heapq.heappop(self._heap)
                    waiting = due.waiting
                    if due.version != waiting.version:
                        continue
                    waiting.queued = False
                    poll = asyncio.create_task(self._poll(waiting), name="poll")
                    self._polls.add(poll)
                    poll.add_done_callback(self._polls.discard)
        finally:
            for poll in list(self._polls):
                poll.cancel()
            await asyncio.gather(*self._polls, return_exceptions=True)

    async def _sleep_until_due(self) -> None:
        self._changed.clear()
        while self._heap and self._heap[0].version != self._heap[0].waiting.version:
            heapq.heappop(self._heap)  # moved earlier or ended: not a reason to wake up
        if not self._heap:
            await self._changed.wait()
            return
        delay = self._heap[0].at - self._clock.monotonic()
        if delay <= 0:
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    async def _poll(self, waiting: Waiting) -> None:
        adapter, wait = waiting.adapter, waiting.wait
        try:
            if not self._is_parked(waiting.task_id):
                # The worker let the task go (stopping, or given up for dead): so do we.
                self._end(waiting)
                return
            if self._watch.is_cancelled(waiting.job_id):
                await adapter.cancel(wait)
                self._deliver(waiting, None)
                return
            if self._clock.monotonic() > wait.deadline:
                await adapter.cancel(wait)
                self._deliver(waiting, PollResult(final=True, error=adapter.timed_out(wait)))
                return
            result = await adapter.poll(wait)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug in polling must not lose the item: hand it the error to decide on.
            log.exception("polling %s failed", wait.state.external_task_id)
            self._deliver(waiting, PollResult(final=True, error=exc))
            return
        if result.final:
            self._deliver(waiting, result)
        elif waiting.woken:
            waiting.woken = False
            self._push(waiting, at=self._clock.monotonic())
        else:
            self._push(waiting)

    def _deliver(self, waiting: Waiting, result: PollResult | None) -> None:
        self._end(waiting)
        self._resume(waiting.task_id, StepNews(waiting.step_run_id, result))

    def _end(self, waiting: Waiting) -> None:
        waiting.version += 1  # any entry still queued for it is stale now
        if self._wakeups is not None:
            self._wakeups.when_woken(waiting.step_run_id, None)
        waiting.adapter.wait_ended(waiting.wait)
        self._watch.untrack(waiting.job_id)

    async def close(self) -> None:
        """Stop polling (the worker releases its parked tasks itself)."""
        for poll in list(self._polls):
            poll.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._polls, return_exceptions=True)
