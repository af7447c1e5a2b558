"""The fake provider for the engine benchmark: the simulator, plus a stopwatch on its door.

The simulator (``conveyor.sim``) already counts per task: ``submitted_at``, ``done_at``,
``first_poll_after_done_at``, ``first_download_at`` and the number of polls. It does not keep
the time of every poll, which is what "actual poll interval" needs. Rather than change the
simulator, the benchmark serves the same app with one more middleware, inside the
simulator's error middleware, that stamps each gen-api poll on arrival (``time.monotonic``,
the simulator's own clock) and counts submissions and downloads, so "in flight at the
provider" (submitted, result not fetched yet) is known at any moment without scanning tasks.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from conveyor.sim import RunningSimulator, SimConfig, create_sim_app

POLL_ROUTE = "/genapi/api/v1/request/get/{request_id}"
SUBMIT_ROUTE = "/genapi/api/v1/networks/{model}"
FILES_ROUTE = "/files/{file_id}"


@dataclass
class DoorLog:
    """What crossed the simulator's door: poll times per task, submissions, downloads."""

    polls: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    submitted: int = 0
    downloaded: int = 0

    @property
    def in_flight(self) -> int:
        """Tasks submitted whose result nobody has fetched yet."""
        return self.submitted - self.downloaded

    def clear(self) -> None:
        self.polls.clear()
        self.submitted = self.downloaded = 0


def _door_middleware(log: DoorLog) -> Any:
    @web.middleware
    async def door(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        canonical = route.canonical if route is not None else ""
        if canonical == POLL_ROUTE:
            log.polls[request.match_info["request_id"]].append(time.monotonic())
        response = await handler(request)
        if response.status == 200:
            if canonical == SUBMIT_ROUTE:
                log.submitted += 1
            elif canonical == FILES_ROUTE and request.method == "GET":
                log.downloaded += 1
        return response

    return door


async def start_recording_simulator(config: SimConfig) -> tuple[RunningSimulator, DoorLog]:
    """The simulator on a free loopback port of this loop, with a ``DoorLog`` attached."""
    app = create_sim_app(config)
    log = DoorLog()
    app.middlewares.append(_door_middleware(log))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    host, port = runner.addresses[0][:2]
    return RunningSimulator(app, runner, f"http://{host}:{port}"), log


def fake_provider(*, latency_min: float, latency_max: float, scale: float) -> SimConfig:
    """The issue's fake provider: uniform(min, max) × scale seconds, small images.

    Images are capped at 64 px: the simulator draws a unique PNG per task on download, and
    at 992 px that costs it ~22 ms of CPU each, which would measure the fake, not Conveyor.
    """
    return SimConfig(
        latency_min=latency_min,
        latency_max=latency_max,
        latency_scale=scale,
        max_image_side=64,
        seed=7,
    )
