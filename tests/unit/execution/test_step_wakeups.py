"""``StepWakeups``: a wake ends a step's pause at once, is kept while the step is between two
pauses, and is dropped for steps this process does not run; events on the bus reach it."""

from __future__ import annotations

import asyncio

from conveyor.core.clock import ManualClock
from conveyor.execution.wakeups import StepWakeups
from conveyor.jobs.events import STEP_WAKE, EventBus, JobEvent


async def _parked(clock: ManualClock, count: int = 1) -> None:
    async with asyncio.timeout(5):
        while clock.sleepers != count:
            await asyncio.sleep(0)


async def test_a_wake_ends_the_pause_at_once() -> None:
    clock = ManualClock()
    wakeups = StepWakeups(clock)
    with wakeups.listening("step-1"):
        pause = asyncio.create_task(wakeups.sleep("step-1", 60))
        await _parked(clock)
        assert wakeups.wake("step-1") is True
        assert await asyncio.wait_for(pause, 5) is True
    assert clock.sleepers == 0  # the clock's timer was let go
    assert clock.monotonic() == 1_000.0  # no time had to pass


async def test_without_a_wake_the_pause_lasts_its_time() -> None:
    clock = ManualClock()
    wakeups = StepWakeups(clock)
    with wakeups.listening("step-1"):
        pause = asyncio.create_task(wakeups.sleep("step-1", 60))
        await _parked(clock)
        clock.advance(59)
        await asyncio.sleep(0)
        assert not pause.done()
        clock.advance(1)
        assert await asyncio.wait_for(pause, 5) is False


async def test_a_wake_between_pauses_ends_the_next_one() -> None:
    clock = ManualClock()
    wakeups = StepWakeups(clock)
    with wakeups.listening("step-1"):
        wakeups.wake("step-1")  # the step was polling when the callback came
        assert await asyncio.wait_for(wakeups.sleep("step-1", 60), 5) is True
        # Used up: the pause after it is a full one again.
        pause = asyncio.create_task(wakeups.sleep("step-1", 30))
        await _parked(clock)
        clock.advance(30)
        assert await asyncio.wait_for(pause, 5) is False


async def test_wakes_for_steps_not_running_here_are_dropped() -> None:
    wakeups = StepWakeups(ManualClock(sleep_advances=True))
    assert wakeups.wake("elsewhere") is False
    with wakeups.listening("step-1"):
        assert len(wakeups) == 1
    assert len(wakeups) == 0
    assert wakeups.wake("step-1") is False
    # Not listening: a plain sleep on the clock.
    assert await wakeups.sleep("step-1", 5) is False


async def test_step_wake_events_on_the_bus_wake_the_step() -> None:
    clock = ManualClock()
    bus = EventBus()
    wakeups = StepWakeups(clock)
    follower = asyncio.create_task(wakeups.follow(bus))
    try:
        with wakeups.listening("step-9"):
            pause = asyncio.create_task(wakeups.sleep("step-9", 60))
            await _parked(clock)
            bus.publish(JobEvent("job-1", "job.progress", {"step_run_id": "step-9"}))
            await asyncio.sleep(0.01)
            assert not pause.done()  # only step.wake events wake steps
            bus.publish(JobEvent("job-1", STEP_WAKE, {"step_run_id": "step-9"}))
            assert await asyncio.wait_for(pause, 5) is True
    finally:
        follower.cancel()
