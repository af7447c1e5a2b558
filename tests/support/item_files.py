"""The production ``AssetIO`` for tests that run a model outside a job.

A running item stores what its models return through ``ItemFiles``: a result URL is
downloaded by the SSRF-checked ``SafeFetcher`` under the service's ``UrlPolicy``, a
``data:`` URL is decoded, the MIME type is sniffed by the asset store and the bytes land in
storage. ``production_files`` builds exactly that, over a migrated SQLite database and local
storage in the test's directory, so provider tests store results the way the service does:
a URL the policy refuses is refused in the test too.

The files belong to an item of a job of a client that exist only as ids: rows are written
when a running item flushes its files with the step that made them, which these tests never
do. Everything a test needs (``read``, ``url_for``) is served from the pending files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from conveyor.assets.service import AssetService
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from conveyor.jobs.files import ItemFiles
from conveyor.net import SafeFetcher, UrlPolicy
from conveyor.providers.base import FileInput, StoredFile
from conveyor.storage import LocalStorage

__all__ = ["content_of", "production_files"]

MAX_BYTES = 25 * 1024 * 1024


@asynccontextmanager
async def production_files(
    database_url: str, storage_dir: Path, session: aiohttp.ClientSession, policy: UrlPolicy
) -> AsyncIterator[ItemFiles]:
    """``ItemFiles`` for one item, fetching through ``SafeFetcher(session, policy)``."""
    db = Database(database_url)
    storage = LocalStorage(storage_dir, fsync=False)
    assets = AssetService(db, storage, SystemClock(), max_upload_bytes=MAX_BYTES)
    try:
        yield ItemFiles(
            assets,
            SafeFetcher(session, policy),
            client_id="client-under-test",
            job_id="job-under-test",
            item_id="item-under-test",
            max_bytes=MAX_BYTES,
        )
    finally:
        await db.dispose()


async def content_of(files: ItemFiles, stored: StoredFile) -> bytes:
    """The bytes of a file the model stored, read back through the same ``AssetIO``."""
    return await files.read(FileInput(asset_id=stored.asset_id))
