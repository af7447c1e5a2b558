"""Three ways to run the simulator: in the caller's event loop, on a thread, or blocking.

``start_simulator`` serves on a free port of the current loop and returns a
``RunningSimulator`` (also an async context manager) whose ``state`` the test can read and
change directly. ``SimulatorThread`` runs the same thing on a private loop for synchronous
code; it reaches the state through that loop so nothing races. ``run_simulator`` is the
blocking entry point behind ``conveyor sim``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from conveyor.core.clock import Clock
from conveyor.sim.app import PROVIDER_ORIGINS, create_sim_app, describe_base_urls
from conveyor.sim.config import SimConfig
from conveyor.sim.state import SIM_STATE, SimState

T = TypeVar("T")

_SHUTDOWN_SECONDS = 5.0
DEFAULT_PORT = 8100


class RunningSimulator:
    """A simulator serving in this event loop; ``close`` (or ``async with``) stops it."""

    def __init__(self, app: web.Application, runner: web.AppRunner, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self._runner = runner

    @property
    def state(self) -> SimState:
        return self.app[SIM_STATE]

    @property
    def config(self) -> SimConfig:
        return self.state.config

    @property
    def base_urls(self) -> dict[str, str]:
        """Protocol → the URL that stands for its provider's origin."""
        return describe_base_urls(self.base_url)

    def counters(self) -> dict[str, Any]:
        return self.state.snapshot()

    def update_config(self, patch: dict[str, Any]) -> SimConfig:
        """Apply a JSON merge patch to the settings (as ``POST /_sim/config`` does)."""
        self.state.config = self.state.config.merged(patch)
        return self.state.config

    def reset(self) -> None:
        self.state.reset()

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def start_simulator(
    config: SimConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
) -> RunningSimulator:
    """Serve the simulator in the running loop; port 0 picks a free port."""
    app = create_sim_app(config, clock=clock)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningSimulator(app, runner, f"http://{bound_host}:{bound_port}")


class SimulatorThread:
    """The simulator on its own thread and event loop, for synchronous tests and scripts."""

    def __init__(
        self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._config = config
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: RunningSimulator | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> SimulatorThread:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._running = loop.run_until_complete(
                    start_simulator(self._config, self._host, self._port)
                )
            except BaseException as error:  # handed to the starting thread below
                self._error = error
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._running.close())
            loop.close()

        self._thread = threading.Thread(target=serve, name="conveyor-sim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("simulator did not start in time")
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def _in_loop(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the simulator's loop and wait for its result."""
        if self._loop is None or self._running is None:
            raise RuntimeError("simulator is not running")

        async def call() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    @property
    def _simulator(self) -> RunningSimulator:
        if self._running is None:
            raise RuntimeError("simulator is not running")
        return self._running

    @property
    def base_url(self) -> str:
        return self._simulator.base_url

    @property
    def base_urls(self) -> dict[str, str]:
        return self._simulator.base_urls

    @property
    def config(self) -> SimConfig:
        return self._in_loop(lambda: self._simulator.config)

    def counters(self) -> dict[str, Any]:
        return self._in_loop(self._simulator.counters)

    def update_config(self, patch: dict[str, Any]) -> SimConfig:
        return self._in_loop(lambda: self._simulator.update_config(patch))

    def reset(self) -> None:
        self._in_loop(self._simulator.reset)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def startup_lines(host: str, port: int) -> list[str]:
    """What ``conveyor sim`` prints: real URLs for the index, the control API and each
    protocol (a wildcard bind is no address to open: the loopback one reaches it)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    origin = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    lines = [
        f"Conveyor provider simulator on {origin}/ (control: {origin}/_sim/config, "
        f"{origin}/_sim/counters, {origin}/_sim/reset)"
    ]
    for protocol, url in describe_base_urls(origin).items():
        lines.append(f"  {protocol:<10} {url:<40} stands for {PROVIDER_ORIGINS[protocol]}")
    return lines


def run_simulator(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, config: SimConfig | None = None
) -> None:
    """Serve until interrupted (``conveyor sim``); prints where each protocol lives."""
    print("\n".join(startup_lines(host, port)), file=sys.stderr, flush=True)
    web.run_app(
        create_sim_app(config),
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=_SHUTDOWN_SECONDS,
    )
