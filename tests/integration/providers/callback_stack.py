"""Conveyor and the simulator on real sockets, with callbacks on and one manual clock.

Conveyor's ``CONVEYOR_PUBLIC_URL`` is its own address (its port is picked before it starts),
so the simulator's callbacks reach it over HTTP as a provider's would. Engine, provider
limits and simulator share a ``ManualClock``: a task ends, and its callback is sent, only
when the test moves the clock; the step's safety-net poll waits on the same clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

from conveyor.app import create_app
from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator, SimConfig, start_simulator
from conveyor.sim.state import SimTask
from tests.integration.conftest import fast_settings
from tests.support.server import free_port, serving

T = TypeVar("T")

KIE_HMAC_KEY = "kie-webhook-hmac-key-for-tests"
REPLICATE_SECRET = "whsec_" + "c2ltdWxhdGVkIHJlcGxpY2F0ZSBzZWNyZXQ="
SECRETS = {
    "CONVEYOR_KIE_WEBHOOK_HMAC_KEY": KIE_HMAC_KEY,
    "CONVEYOR_REPLICATE_WEBHOOK_SECRET": REPLICATE_SECRET,
}


@dataclass
class Stack:
    base_url: str
    http: httpx.AsyncClient
    app: FastAPI
    sim: RunningSimulator
    clock: ManualClock

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def task(self, protocol: str) -> SimTask:
        """The one task the simulator holds for ``protocol``."""
        (task,) = [t for t in self.sim.state.tasks.values() if t.protocol == protocol]
        return task

    def polls(self, task: SimTask) -> int:
        return int(self.sim.counters()["polls"].get(task.id, 0))

    async def job(self, job_id: str) -> dict[str, Any]:
        answer = await self.http.get(f"/v1/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def start_sim(clock: ManualClock, sim: dict[str, Any] | None = None) -> RunningSimulator:
    """The simulator on ``clock``: 8 s tasks, callbacks signed as the secrets say."""
    config = SimConfig.model_validate(
        {
            "latency_min": 8,
            "latency_max": 8,
            "kie_webhook_hmac_key": KIE_HMAC_KEY,
            "replicate_webhook_secret": REPLICATE_SECRET,
            **(sim or {}),
        }
    )
    return await start_simulator(config, clock=clock)


@asynccontextmanager
async def open_stack(
    database_url: str,
    data_dir: Path,
    *,
    sim: dict[str, Any] | None = None,
    running: tuple[RunningSimulator, int] | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """Simulator and Conveyor (workers embedded), callbacks on, one ``ManualClock``.

    ``running`` restarts Conveyor beside a simulator that outlives it, on the same port (so
    callback URLs issued before the restart still arrive); the caller closes that simulator.
    """
    if running is None:
        simulator, port = await start_sim(ManualClock(), sim), free_port()
    else:
        simulator, port = running
    clock = simulator.state.clock
    assert isinstance(clock, ManualClock)
    settings = fast_settings(
        database_url,
        data_dir,
        simulate=True,
        simulator_url=simulator.base_url,
        public_url=f"http://127.0.0.1:{port}",
        # Heartbeats are stamped with the manual clock: moving it by minutes must not make
        # the worker look dead.
        heartbeat_timeout=1e9,
        **overrides,
    )
    app = create_app(settings, clock=clock)
    try:
        async with (
            serving(app, port=port) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            yield Stack(base_url, http, app, simulator, clock)
    finally:
        if running is None:
            await simulator.close()


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0) -> T:
    """The first non-None answer of ``check`` (real time bounds it, as a safety net only)."""
    async with asyncio.timeout(timeout):
        while True:
            found = await check()
            if found is not None:
                return found
            await asyncio.sleep(0.01)


async def until(predicate: Callable[[], bool], *, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
