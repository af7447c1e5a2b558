"""Everything a seed-000 test talks to, on real sockets: Conveyor, the simulator, images.

Three loopback addresses keep the SSRF policy honest: Conveyor answers on 127.0.0.1, the
image server on 127.0.0.2 (the only private network the settings allow, as an operator
would allow an internal image store), the simulator on 127.0.0.3 (allowed because
simulate mode allows the simulator's host). An image URL at 127.0.0.1 is therefore
refused like any other loopback address.

The translation model name is set apart from the vision one
(``CONVEYOR_OPENAI_TRANSLATE_MODEL``), so the simulator's per-model counters and latencies
tell the two steps apart. With a ``ManualClock`` the simulator waits on the same clock as
the engine: nothing in these tests waits for real time to pass.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from fastapi import FastAPI
from PIL import Image

from conveyor.app import create_app
from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator, SimConfig, start_simulator
from tests.integration.conftest import fast_settings
from tests.support.server import serving

IMAGE_HOST = "127.0.0.2"
SIM_HOST = "127.0.0.3"
VISION_MODEL = "gpt-4o-mini"
TRANSLATE_MODEL = "gpt-4.1-mini"
KEYS = {"acme": "acme-shared-key-0123456789", "globex": "globex-shared-key-9876543210"}
FIVE_GB = 5 * 1024**3


def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


class ImageServer:
    """Photos and traps: a real image, HTML, a 5 GB promise, redirects to private places."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    async def start(self) -> ImageServer:
        app = web.Application()
        app.router.add_get("/img/{name}", self._image)
        app.router.add_get("/page.html", self._page)
        app.router.add_get("/corrupt.png", self._corrupt)
        app.router.add_get("/huge.jpg", self._huge)
        app.router.add_get("/endless.png", self._endless)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/missing.jpg", self._missing)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, IMAGE_HOST, 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _count(self, request: web.Request) -> None:
        self.hits[request.path] += 1

    async def _image(self, request: web.Request) -> web.Response:
        self._count(request)
        name = request.match_info["name"]
        shade = sum(name.encode()) % 200
        return web.Response(body=png(colour=(shade, 40, 200 - shade)), content_type="image/png")

    async def _page(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(text="<html><body>not a photo</body></html>", content_type="image/png")

    async def _corrupt(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(body=png()[:40] + b"\x00" * 64, content_type="image/png")

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        self._count(request)
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = FIVE_GB
        await response.prepare(request)
        with suppress(ConnectionError, RuntimeError):
            await response.write(b"\xff\xd8\xff\xe0" + b"\x00" * 60_000)
        return response

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        """No Content-Length: only counting the bytes as they come can stop this one."""
        self._count(request)
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"\x00" * 65_536
        try:
            await response.write(png()[:16])
            for _ in range(10_000):  # ~650 MB at most, far past any limit here
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        self._count(request)
        raise web.HTTPFound(request.query["to"])

    async def _missing(self, request: web.Request) -> web.Response:
        self._count(request)
        raise web.HTTPNotFound()


@dataclass
class Stack:
    base_url: str
    http: httpx.AsyncClient
    app: FastAPI
    sim: RunningSimulator
    images: ImageServer
    clock: ManualClock | None

    def counters(self) -> dict[str, int]:
        """Chat calls the simulator answered, by model."""
        submissions: dict[str, dict[str, int]] = self.sim.counters()["submissions"]
        return dict(submissions.get("openai", {}))

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


StartStack = Callable[..., AbstractAsyncContextManager[Stack]]


@asynccontextmanager
async def open_stack(
    database_url: str,
    data_dir: Path,
    *,
    clock: ManualClock | None = None,
    sim: dict[str, Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """Simulator, image server and Conveyor (workers embedded) with these settings."""
    config = SimConfig.model_validate({"latency_min": 0, "latency_max": 0, **(sim or {})})
    if clock is not None:
        # Heartbeats are written every half second of real time, stamped with the manual
        # clock; a test that moves the clock by minutes at once must not make the worker
        # look dead (its tasks would be claimed again and run twice).
        overrides.setdefault("heartbeat_timeout", 1e9)
    simulator = await start_simulator(config, SIM_HOST, clock=clock)
    images = await ImageServer().start()
    settings = fast_settings(
        database_url,
        data_dir,
        simulate=True,
        simulator_url=simulator.base_url,
        **{
            "allow_private_urls": False,
            "allowed_fetch_networks": [f"{IMAGE_HOST}/32"],
            "descriptions_clients": KEYS,
            **overrides,
        },
    )
    app = create_app(settings, clock=clock)
    try:
        async with (
            serving(app) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            yield Stack(base_url, http, app, simulator, images, clock)
    finally:
        await images.close()
        await simulator.close()


async def until(predicate: Callable[[], bool], *, timeout: float = 20.0) -> None:
    """Wait (in real time, as a safety net only) until ``predicate`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
