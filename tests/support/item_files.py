"""The production ``AssetIO`` for tests that run a model outside a job.

A running item stores what its models return through ``ItemFiles``: a result URL is
downloaded by the SSRF-checked ``SafeFetcher`` under the service's ``UrlPolicy``, a
``data:`` URL is decoded, the MIME type is sniffed by the asset store and the bytes land in
storage. ``production_files`` builds exactly that, over a migrated SQLite database and local
storage in the test's directory, so provider tests store results the way the service does:
a URL the policy refuses is refused in the test too.

The files belong to the local client and an item that exists only as an id: their rows would
be written by the step that returns them, which these tests never run (``record`` does it
when a test needs one); ``content_of`` reads back the bytes of a file the model stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from conveyor.assets.service import AssetService
from conveyor.clients.service import LOCAL_CLIENT_ID, LOCAL_CLIENT_NAME, ClientService
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from conveyor.execution.files import FreshFile, ItemFiles
from conveyor.net import SafeFetcher, UrlPolicy
from conveyor.providers.base import StoredFile
from conveyor.storage import LocalStorage

__all__ = ["ProductionFiles", "content_of", "production_files"]

MAX_BYTES = 25 * 1024 * 1024


class ProductionFiles(ItemFiles):
    """``ItemFiles`` that also lists what a model stored through it (``stored``) and can
    record a stored file's row as the step returning it would (``record``)."""

    __slots__ = ("assets", "db", "stored")

    def __init__(self, db: Database, assets: AssetService, fetcher: SafeFetcher) -> None:
        super().__init__(
            db,
            assets,
            fetcher,
            client_id=LOCAL_CLIENT_ID,
            job_id=None,
            item_id="item-under-test",
            max_bytes=MAX_BYTES,
        )
        self.assets = assets
        self.db = db
        self.stored: list[StoredFile] = []

    async def store(
        self, data: bytes, *, mime_type: str | None = None, filename: str | None = None
    ) -> StoredFile:
        stored = await super().store(data, mime_type=mime_type, filename=filename)
        self.stored.append(stored)
        return stored

    async def store_from_url(self, url: str) -> StoredFile:
        stored = await super().store_from_url(url)
        self.stored.append(stored)
        return stored

    async def record(self, stored: StoredFile) -> None:
        assert isinstance(stored, FreshFile)
        assert stored.asset is not None
        async with self.db.write() as conn:
            await ClientService(self.db, SystemClock()).ensure_client(conn, LOCAL_CLIENT_NAME)
            await self.assets.add(conn, stored.asset)


@asynccontextmanager
async def production_files(
    database_url: str, storage_dir: Path, session: aiohttp.ClientSession, policy: UrlPolicy
) -> AsyncIterator[ProductionFiles]:
    """``ItemFiles`` for one item, fetching through ``SafeFetcher(session, policy)``."""
    db = Database(database_url)
    storage = LocalStorage(storage_dir, fsync=False)
    assets = AssetService(storage, SystemClock(), max_upload_bytes=MAX_BYTES)
    try:
        yield ProductionFiles(db, assets, SafeFetcher(session, policy))
    finally:
        await db.dispose()


async def content_of(files: ProductionFiles, stored: StoredFile) -> bytes:
    """The bytes of a file the model stored."""
    assert isinstance(stored, FreshFile)
    assert stored.asset is not None
    return await files.assets.read_bytes(stored.asset)
