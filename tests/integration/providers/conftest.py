"""The simulator on a free port with a virtual clock, and the shipped specs pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sim_support import MemoryAssetIO

from conveyor.core.clock import ManualClock
from conveyor.providers.http import read_specs
from conveyor.providers.spec import ProviderSpec
from conveyor.sim import RunningSimulator, SimConfig, start_simulator


@pytest.fixture
def clock() -> ManualClock:
    """The adapters' and the simulator's time: an adapter's sleep moves both."""
    return ManualClock(sleep_advances=True)


@pytest.fixture
async def simulator(clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    config = SimConfig(latency_min=4, latency_max=8)
    running = await start_simulator(config, clock=clock)
    async with running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def files(session: aiohttp.ClientSession) -> MemoryAssetIO:
    return MemoryAssetIO(session)


@pytest.fixture(scope="session")
def shipped_specs() -> dict[str, ProviderSpec]:
    # The same loader (and checks) production uses.
    return {spec.name: spec for spec in read_specs()}
