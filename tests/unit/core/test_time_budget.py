"""Time budgets on a manual clock: work is stopped when it has worked its budget, and time
spent waiting its turn (``waiting_turn``) is not charged."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.core.clock import ManualClock
from conveyor.core.time_budget import TimeBudget, TimeBudgetExceeded, waiting_turn


async def parked(clock: ManualClock, count: int = 1) -> None:
    """Until ``count`` coroutines sleep on the clock (the work and the watchdog)."""
    async with asyncio.timeout(5):
        while clock.sleepers < count:
            await asyncio.sleep(0)


async def test_work_within_its_budget_returns_its_result() -> None:
    clock = ManualClock()

    async def work() -> str:
        await clock.sleep(100)
        return "done"

    running = asyncio.create_task(TimeBudget(clock, 120).run(work()))
    await parked(clock, 2)
    clock.advance(100)
    assert await running == "done"


async def test_work_past_its_budget_is_stopped() -> None:
    clock = ManualClock()
    stopped = asyncio.Event()

    async def work() -> None:
        try:
            await clock.sleep(1000)
        except asyncio.CancelledError:
            stopped.set()
            raise

    running = asyncio.create_task(TimeBudget(clock, 120).run(work()))
    await parked(clock, 2)
    clock.advance(119)
    await asyncio.sleep(0)
    assert not running.done()
    clock.advance(1)
    with pytest.raises(TimeBudgetExceeded) as caught:
        await running
    assert caught.value.seconds == 120
    assert stopped.is_set()


async def test_waiting_for_a_turn_is_not_charged() -> None:
    clock = ManualClock()
    turn = asyncio.Event()
    worked = asyncio.Event()

    async def work() -> str:
        with waiting_turn():
            await turn.wait()  # a busy engine: 500 s pass meanwhile
        await clock.sleep(100)
        worked.set()
        await clock.sleep(30)
        return "done"

    budget = TimeBudget(clock, 120)
    running = asyncio.create_task(budget.run(work()))
    async with asyncio.timeout(5):
        while not budget.is_waiting:
            await asyncio.sleep(0)
    clock.advance(500)
    assert budget.used() == 0
    turn.set()
    await parked(clock, 2)
    clock.advance(100)
    await worked.wait()
    assert budget.used() == 100
    await parked(clock, 2)
    clock.advance(19)
    await asyncio.sleep(0)
    assert not running.done()
    clock.advance(1)
    with pytest.raises(TimeBudgetExceeded):
        await running


async def test_outside_a_budget_waiting_turn_does_nothing() -> None:
    with waiting_turn():
        pass


async def test_an_error_of_the_work_is_its_own() -> None:
    async def work() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await TimeBudget(ManualClock(), 10).run(work())
