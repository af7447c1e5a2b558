"""The runtime hands its one clock to the provider limits and to the simulator it starts."""

from __future__ import annotations

from pathlib import Path

from conveyor.app import create_app
from conveyor.core.clock import ManualClock
from conveyor.providers.http import HttpModelAdapter
from tests.integration.conftest import fast_settings
from tests.support.server import free_port, serving


async def test_limits_and_simulator_run_on_the_engine_clock(
    database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    settings = fast_settings(
        database_url,
        tmp_path / "data",
        simulate=True,
        simulator_url=f"http://127.0.0.1:{free_port()}",
    )
    app = create_app(settings, clock=clock)
    async with serving(app):
        runtime = app.state.runtime
        adapters = [a for a in runtime.models.all() if isinstance(a, HttpModelAdapter)]
        assert adapters
        assert all(adapter.limits.clock is clock for adapter in adapters)
        simulator = runtime.simulator
        assert simulator is not None
        before = simulator.state.now()
        clock.advance(30)
        assert simulator.state.now() - before == 30
