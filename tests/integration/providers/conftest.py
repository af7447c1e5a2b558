"""The simulator on a free port with a virtual clock, the shipped specs pointed at it, and
results stored the production way (``ItemFiles`` fetching through the SSRF-checked fetcher).

The simulator listens on a loopback address of its own, ``SIM_HOST``; the fetch policy is the
one the service derives in simulate mode (``UrlPolicy.from_settings``), which allows the
simulator's host and nothing else private: a result URL anywhere else is refused. The
adapters and the simulator share one clock whose sleeps move it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sim_support import (
    SIM_HOST,
)

from conveyor.config import Settings
from conveyor.core.clock import ManualClock
from conveyor.net import UrlPolicy
from conveyor.providers.http import read_specs
from conveyor.providers.spec import ProviderSpec
from conveyor.sim import RunningSimulator, SimConfig, start_simulator
from tests.support import databases
from tests.support.item_files import ProductionFiles, production_files


@pytest.fixture
def clock() -> ManualClock:
    """The adapters' and the simulator's time: an adapter's sleep moves both."""
    return ManualClock(sleep_advances=True)


@pytest.fixture
def sim_clock(clock: ManualClock) -> ManualClock:
    """The simulator's time, for tests that move it by hand (the same clock)."""
    return clock


@pytest.fixture
async def simulator(clock: ManualClock) -> AsyncIterator[RunningSimulator]:
    config = SimConfig(latency_min=4, latency_max=8)
    running = await start_simulator(config, SIM_HOST, clock=clock)
    async with running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def fetch_policy(simulator: RunningSimulator, tmp_path: Path) -> UrlPolicy:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        simulate=True,
        simulator_url=simulator.base_url,
    )
    return UrlPolicy.from_settings(settings)


@pytest.fixture
async def files(
    session: aiohttp.ClientSession,
    fetch_policy: UrlPolicy,
    sqlite_template: Path,
    tmp_path: Path,
) -> AsyncIterator[ProductionFiles]:
    url = databases.fresh_sqlite_url(sqlite_template, tmp_path)
    async with production_files(url, tmp_path / "storage", session, fetch_policy) as item_files:
        yield item_files


@pytest.fixture(scope="session")
def shipped_specs() -> dict[str, ProviderSpec]:
    # The same loader (and checks) production uses.
    return {spec.name: spec for spec in read_specs()}
