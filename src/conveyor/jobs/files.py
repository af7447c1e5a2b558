"""``AssetIO`` for one item: what its models read, and where their results are stored.

Inputs are assets of the job's client or URLs the client gave (fetched through the SSRF
boundary). A remote provider gets a URL it can fetch: the client's own URL, a presigned
storage URL, a signed link to this server when a public URL is configured, or else the
bytes inline as a ``data:`` URL.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.models import SOURCE_DERIVED, SOURCE_GENERATED
from conveyor.assets.repository import Asset
from conveyor.assets.service import AssetService, decode_data_url
from conveyor.core.db import after_commit
from conveyor.errors import PayloadTooLarge
from conveyor.providers.base import FileInput, StoredFile
from conveyor.providers.errors import PermanentProviderError


class DownloadBody(Protocol):
    @property
    def content_length(self) -> int | None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...


class Downloader(Protocol):
    """The SSRF-checked fetcher (``conveyor.net``), as far as this module needs it."""

    def stream(
        self,
        url: str,
        *,
        max_bytes: int | None = None,
        accept: Collection[str] | None = None,
        allow_data: bool = False,
    ) -> AbstractAsyncContextManager[DownloadBody]: ...


# Results announced at most this big are read into memory and stored in one write; larger
# or unannounced ones are spooled to disk while hashed.
_IN_MEMORY_BYTES = 8 * 1024 * 1024


def _without_data(url: str) -> str | None:
    # A data: URL is the content itself: not worth keeping as the asset's source.
    return None if url[:5].lower() == "data:" else url


def _source(url: str | None) -> dict[str, str] | None:
    return {"source_url": url} if url and len(url) <= 2048 else None


def stored(asset: Asset) -> StoredFile:
    return StoredFile(asset.id, asset.mime_type, asset.size, asset.sha256)


class ItemFiles:
    # One per running item, thousands at once: no per-instance dict.
    __slots__ = (
        "_assets",
        "_client_id",
        "_downloader",
        "_item_id",
        "_job_id",
        "_link_for",
        "_max_bytes",
        "_pending",
    )

    def __init__(
        self,
        assets: AssetService,
        downloader: Downloader,
        *,
        client_id: str,
        job_id: str,
        item_id: str,
        max_bytes: int,
        link_for: Callable[[Asset], Awaitable[str | None]] | None = None,
    ) -> None:
        self._assets = assets
        self._downloader = downloader
        self._client_id = client_id
        self._job_id = job_id
        self._item_id = item_id
        self._max_bytes = max_bytes
        self._link_for = link_for
        # Stored files whose rows are written with the step that made them (``flush``).
        self._pending: dict[str, Asset] = {}

    async def flush(self, conn: AsyncConnection) -> None:
        """Write the rows of files stored since the last flush, in the caller's transaction."""
        batch = list(self._pending.values())
        if not batch:
            return
        await self._assets.record(conn, batch)

        def forget() -> None:
            for asset in batch:
                self._pending.pop(asset.id, None)

        after_commit(conn, forget)

    async def _asset(self, file: FileInput) -> Asset:
        if file.asset_id is None:
            raise PermanentProviderError("file input has neither asset_id nor url")
        pending = self._pending.get(file.asset_id)
        if pending is not None:
            return pending
        return await self._assets.get(file.asset_id, client_id=self._client_id)

    async def read(self, file: FileInput, *, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or self._max_bytes
        if file.url is not None:
            if file.url.startswith("data:"):
                data, _ = decode_data_url(file.url)
            else:
                async with self._downloader.stream(file.url, max_bytes=limit) as body:
                    data = await body.read()
            if len(data) > limit:
                raise PayloadTooLarge(f"input file is larger than {limit} bytes")
            return data
        asset = await self._asset(file)
        if asset.size > limit:
            raise PayloadTooLarge(f"input file is larger than {limit} bytes")
        return await self._assets.read_bytes(asset)

    async def url_for(self, file: FileInput) -> str:
        if file.url is not None:
            return file.url
        asset = await self._asset(file)
        link = await self._assets.storage.presigned_url(asset.storage_key)
        if link is None and self._link_for is not None:
            link = await self._link_for(asset)
        if link is not None:
            return link
        data = await self._assets.read_bytes(asset)
        return f"data:{asset.mime_type};base64,{base64.b64encode(data).decode()}"

    async def store(
        self, data: bytes, *, mime_type: str | None = None, filename: str | None = None
    ) -> StoredFile:
        asset = await self._assets.store_bytes(
            self._client_id,
            data,
            filename=filename,
            source_type=SOURCE_GENERATED,
            job_id=self._job_id,
            item_id=self._item_id,
            record=False,
        )
        self._pending[asset.id] = asset
        return stored(asset)

    async def store_from_url(self, url: str) -> StoredFile:
        return await self._download(url, source_type=SOURCE_GENERATED)

    async def store_input(self, url: str, *, accept: Collection[str] | None = None) -> StoredFile:
        """Store a client-given input URL as a derived asset of this item; with ``accept``
        (e.g. ``image/*``) other content is refused before anything is stored."""
        return await self._download(url, source_type=SOURCE_DERIVED, accept=accept)

    async def _download(
        self, url: str, *, source_type: str, accept: Collection[str] | None = None
    ) -> StoredFile:
        async with self._downloader.stream(
            url, max_bytes=self._max_bytes, accept=accept, allow_data=True
        ) as body:
            length = body.content_length
            if length is not None and length <= min(_IN_MEMORY_BYTES, self._max_bytes):
                data = await body.read()
                asset = await self._assets.store_bytes(
                    self._client_id,
                    data,
                    source_type=source_type,
                    job_id=self._job_id,
                    item_id=self._item_id,
                    meta=_source(url),
                    record=False,
                )
                self._pending[asset.id] = asset
            else:
                asset = await self._ingest(body, source_type, url=_without_data(url))
        return stored(asset)

    async def _ingest(
        self, chunks: AsyncIterable[bytes], source_type: str, url: str | None
    ) -> Asset:
        asset = await self._assets.ingest(
            self._client_id,
            chunks,
            source_type=source_type,
            max_bytes=self._max_bytes,
            job_id=self._job_id,
            item_id=self._item_id,
            meta=_source(url),
            record=False,
        )
        self._pending[asset.id] = asset
        return asset
