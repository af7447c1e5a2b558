"""Fixtures for the declarative-provider tests (the fakes live in ``provider_fakes``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from provider_fakes import FakeProvider, MemoryAssetIO

from conveyor.core.clock import ManualClock


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    """Virtual time: every sleep moves it and returns at once (``clock.sleeps`` records them)."""
    return ManualClock(sleep_advances=True)


@pytest.fixture
def files(session: aiohttp.ClientSession) -> MemoryAssetIO:
    return MemoryAssetIO(session)
