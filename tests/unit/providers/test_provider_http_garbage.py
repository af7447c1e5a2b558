"""Providers answering garbage: every case ends in a clear error, never a crash or a hang."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from provider_fakes import (
    Checkpoints,
    make_call,
    make_spec,
)

from conveyor.core.clock import ManualClock
from conveyor.execution.files import ItemFiles
from conveyor.providers.errors import (
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from conveyor.providers.http import HttpModelAdapter, UnreadableAnswer
from conveyor.providers.limits import ProviderLimits


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    chunk = b"[" + b"1," * 32_000
    try:
        while True:
            await response.write(chunk)
    except (ConnectionResetError, RuntimeError):
        return response


async def announced(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": str(5 * 1024**3)})
    await response.prepare(request)
    await response.write(b"{")
    await asyncio.sleep(5)
    return response


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for _ in range(100):
        await response.write(b" ")
        await asyncio.sleep(0.05)
    await response.write(b'{"id": "late"}')
    return response


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.json_response({})


async def html(request: web.Request) -> web.Response:
    return web.Response(
        text="<html><body><h1>Welcome to nginx!</h1></body></html>", content_type="text/html"
    )


async def empty(request: web.Request) -> web.Response:
    return web.Response(body=b"", content_type="application/json")


async def wrong_json(request: web.Request) -> web.Response:
    return web.json_response(["ok"])


async def task_ok(request: web.Request) -> web.Response:
    return web.json_response({"id": "t1"})


async def no_status(request: web.Request) -> web.Response:
    return web.json_response({"progress": 40})


ROUTES = {
    "/endless": endless,
    "/announced": announced,
    "/trickle": trickle,
    "/hang": hang,
    "/html": html,
    "/empty": empty,
    "/wrong": wrong_json,
    "/task": task_ok,
    "/no-status": no_status,
}


@pytest.fixture
def hits() -> Counter[str]:
    """Requests the garbage server received, by path."""
    return Counter()


@pytest.fixture
async def garbage_url(hits: Counter[str]) -> AsyncIterator[str]:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits[request.path] += 1
        return await handler(request)

    app = web.Application(middlewares=[count])
    for path, handler in ROUTES.items():
        app.router.add_route("*", path, handler)
        app.router.add_route("*", path + "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def adapter_for(
    base_url: str,
    session: aiohttp.ClientSession,
    *,
    submit: str,
    poll: str = "/task",
    timeout: float = 1.0,
    retries: int = 0,
    clock: ManualClock | None = None,
) -> HttpModelAdapter:
    spec = make_spec(
        {"limits": {"timeout": timeout, "retries": retries, "max_response_bytes": 64 * 1024}},
        model={"submit": {"path": submit}, "poll": {"path": poll + "/{{task_id}}"}},
    )
    limits = ProviderLimits.from_spec(spec, clock=clock or ManualClock(sleep_advances=True))
    return HttpModelAdapter(spec, "acme/paint", session, limits, api_key="k", base_url=base_url)


async def run(adapter: HttpModelAdapter, files: ItemFiles) -> ProviderError:
    # A call that hung would meet pytest's timeout; what ended it is in the error's message.
    with pytest.raises(ProviderError) as caught:
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    return caught.value


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/html", "not JSON (text/html: 'Welcome to nginx!')"),
        ("/empty", "not JSON (an empty answer)"),
        ("/wrong", "no task id at 'id': [\"ok\"]"),
    ],
)
async def test_unreadable_submit_answers_are_permanent(
    garbage_url: str,
    session: aiohttp.ClientSession,
    files: ItemFiles,
    path: str,
    fragment: str,
) -> None:
    error = await run(adapter_for(garbage_url, session, submit=path), files)
    assert isinstance(error, UnreadableAnswer)
    assert isinstance(error, PermanentProviderError)
    assert fragment in error.message


@pytest.mark.parametrize("path", ["/endless", "/announced"])
async def test_huge_answers_are_not_read(
    garbage_url: str, session: aiohttp.ClientSession, files: ItemFiles, path: str
) -> None:
    error = await run(adapter_for(garbage_url, session, submit=path), files)
    assert isinstance(error, UnreadableAnswer)
    assert "larger than 65536 bytes" in error.message


@pytest.mark.parametrize("path", ["/hang", "/trickle"])
async def test_slow_answers_time_out_as_retryable(
    garbage_url: str, session: aiohttp.ClientSession, files: ItemFiles, path: str
) -> None:
    error = await run(adapter_for(garbage_url, session, submit=path, timeout=0.3), files)
    assert isinstance(error, RetryableProviderError)
    assert "no answer within 0.3 s" in error.message


async def test_connection_refused_is_retryable(
    session: aiohttp.ClientSession, files: ItemFiles
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = adapter_for(f"http://127.0.0.1:{port}", session, submit="/task", retries=1)
    error = await run(adapter, files)
    assert isinstance(error, RetryableProviderError)
    assert "connection failed" in error.message


async def test_garbage_polls_are_tolerated_then_reported(
    garbage_url: str, session: aiohttp.ClientSession, files: ItemFiles
) -> None:
    error = await run(adapter_for(garbage_url, session, submit="/task", poll="/html"), files)
    assert isinstance(error, UnreadableAnswer)
    assert "3 polls in a row failed" in error.message

    error = await run(adapter_for(garbage_url, session, submit="/task", poll="/no-status"), files)
    assert isinstance(error, UnreadableAnswer)
    assert "poll answers have no status at 'status'" in error.message


async def test_the_circuit_opens_on_repeated_timeouts_and_fails_fast(
    garbage_url: str, session: aiohttp.ClientSession, files: ItemFiles, hits: Counter[str]
) -> None:
    clock = ManualClock(sleep_advances=True)
    adapter = adapter_for(garbage_url, session, submit="/hang", timeout=0.1, clock=clock)
    for _ in range(5):
        await run(adapter, files)
    assert adapter.limits.health().circuit == "open"
    assert hits["/hang"] == 5
    waited_before = list(clock.sleeps)
    error = await run(adapter, files)
    # Fast means: refused before sending anything, and without waiting on the clock.
    assert hits["/hang"] == 5
    assert clock.sleeps == waited_before
    assert isinstance(error, RetryableProviderError)
    assert error.code == "PROVIDER_CIRCUIT_OPEN"
    assert error.retry_after is not None
    assert error.retry_after > 0
