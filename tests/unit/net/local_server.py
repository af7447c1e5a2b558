"""A real aiohttp server on 127.0.0.1 that misbehaves on request, for the fetcher tests.

Routes: ``/image.png`` (a real PNG), ``/padded/{n}`` (the PNG and n zero bytes),
``/page`` (HTML that claims to be a PNG), ``/echo`` (the request as JSON),
``/redirect?to=URL&status=302``, ``/chain/{n}`` (n redirects, then the PNG),
``/status/{code}``, ``/endless`` (chunked bytes until the client goes away),
``/announced`` (a 5 GB Content-Length), ``/hang`` (never answers), ``/stall`` (headers
and a few bytes, then nothing). Every request is recorded.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from PIL import Image

FIVE_GB = 5 * 1024**3


def png_bytes(width: int = 32, height: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class LocalServer:
    port: int
    requests: list[str] = field(default_factory=list)
    endless_sent: int = 0
    endless_stopped: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@asynccontextmanager
async def local_server() -> AsyncIterator[LocalServer]:
    state = LocalServer(port=0)
    image = png_bytes()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        state.requests.append(request.path_qs)
        return await handler(request)

    async def image_route(_: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/png")

    async def padded(request: web.Request) -> web.Response:
        body = image + bytes(int(request.match_info["extra"]))
        return web.Response(body=body, content_type="image/png")

    async def page(_: web.Request) -> web.Response:
        html = b"<!DOCTYPE html><html><body>Not found, sorry</body></html>"
        return web.Response(body=html, content_type="image/png")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "host": request.headers.get("Host"),
                "headers": dict(request.headers),
                "body": (await request.read()).decode(),
            }
        )

    async def redirect(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["to"]})

    async def chain(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        location = f"/chain/{left - 1}" if left > 0 else "/image.png"
        return web.Response(status=302, headers={"Location": location})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = image + bytes(64 * 1024)
        try:
            while state.endless_sent < FIVE_GB:
                await response.write(chunk)
                state.endless_sent += len(chunk)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        finally:
            state.endless_stopped.set()
        return response

    async def announced(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = FIVE_GB
        await response.prepare(request)
        try:
            await response.write(image)
            await state.release.wait()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response

    async def hang(_: web.Request) -> web.Response:
        await state.release.wait()
        return web.Response(text="too late")

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(image[:100])
            await state.release.wait()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response

    app = web.Application(middlewares=[record])
    app.router.add_get("/image.png", image_route)
    app.router.add_get("/padded/{extra}", padded)
    app.router.add_get("/page", page)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/chain/{n}", chain)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/endless", endless)
    app.router.add_get("/announced", announced)
    app.router.add_get("/hang", hang)
    app.router.add_get("/stall", stall)

    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()
