"""The one clock: wall and monotonic time move together; sleeps park or move it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from conveyor.core.clock import Clock, ManualClock, SystemClock


def test_both_clocks_satisfy_the_protocol() -> None:
    clocks: list[Clock] = [SystemClock(), ManualClock()]
    for clock in clocks:
        assert isinstance(clock.monotonic(), float)
        assert clock.now().tzinfo is UTC


def test_system_monotonic_is_time_monotonic() -> None:
    before = time.monotonic()
    reading = SystemClock().monotonic()
    after = time.monotonic()
    assert before <= reading <= after


def test_advance_moves_wall_and_monotonic_time_together() -> None:
    clock = ManualClock(start=1_800_000_000.0, monotonic_start=50.0)
    clock.advance(12.5)
    assert clock.timestamp() == 1_800_000_012.5
    assert clock.now() == datetime.fromtimestamp(1_800_000_012.5, UTC)
    assert clock.monotonic() == 62.5


def test_time_never_goes_back() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    assert clock.monotonic() == 1_000.0


async def test_a_parked_sleep_returns_only_once_advance_reaches_it() -> None:
    clock = ManualClock()
    sleeper = asyncio.create_task(clock.sleep(10))
    await asyncio.sleep(0)
    assert clock.sleepers == 1
    clock.advance(9.9)
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(0.1)
    await asyncio.wait_for(sleeper, 1)
    assert clock.sleepers == 0
    assert clock.sleeps == [10]


async def test_a_zero_sleep_does_not_park() -> None:
    clock = ManualClock()
    await asyncio.wait_for(clock.sleep(0), 1)
    await asyncio.wait_for(clock.sleep(-3), 1)
    assert clock.monotonic() == 1_000.0


async def test_with_sleep_advances_a_sleep_moves_the_clock_and_wakes_parked_sleepers() -> None:
    clock = ManualClock(sleep_advances=True)
    start_wall, start = clock.timestamp(), clock.monotonic()
    await asyncio.wait_for(clock.sleep(3), 1)
    await asyncio.wait_for(clock.sleep(-1), 1)  # a negative sleep never moves time back
    assert clock.monotonic() - start == 3
    assert clock.timestamp() - start_wall == 3
    assert clock.sleeps == [3, -1]
