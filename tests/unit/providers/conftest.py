"""Fixtures for the declarative-provider tests (the fakes live in ``provider_fakes``).

Results are stored the production way (``ItemFiles`` over a SQLite database and local
storage, downloading through ``SafeFetcher``), under a policy that allows exactly the host
the fake providers listen on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import ip_network
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from provider_fakes import (
    FAKE_HOST,
    FakeProvider,
)

from conveyor.core.clock import ManualClock
from conveyor.execution.files import ItemFiles
from conveyor.net import UrlPolicy
from tests.support import databases
from tests.support.item_files import production_files


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, FAKE_HOST, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://{FAKE_HOST}:{port}"
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
async def files(
    session: aiohttp.ClientSession, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[ItemFiles]:
    policy = UrlPolicy(allowed_networks=(ip_network(f"{FAKE_HOST}/32"),))
    url = databases.fresh_sqlite_url(sqlite_template, tmp_path)
    async with production_files(url, tmp_path / "storage", session, policy) as item_files:
        yield item_files
