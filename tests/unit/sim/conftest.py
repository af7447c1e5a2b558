"""Fixtures for simulator tests: a simulator on a manual clock, and an HTTP client.

Every task takes exactly 10 simulated seconds unless a test changes the config, so tests
move time with ``clock.advance`` and never sleep. The simulator's own waits (a synchronous
call's latency, ``Prefer: wait``) move the clock themselves (``sleep_advances``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator, SimConfig, start_simulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(sleep_advances=True)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(latency_min=10, latency_max=10, seed=7)


@pytest.fixture
async def sim(sim_config: SimConfig, clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    async with await start_simulator(sim_config, clock=clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
