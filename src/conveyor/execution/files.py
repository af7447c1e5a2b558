"""``AssetIO`` for one item: what its models read, and where their results are stored.

Inputs are assets of the job's client or URLs the client gave (fetched through the SSRF
boundary). A remote provider gets a URL it can fetch: the client's own URL, a presigned
storage URL, a signed link to this server when a public URL is configured, or else the
bytes inline as a ``data:`` URL.

A model's results are stored as bytes right away and handed back as ``FreshFile``s, which
carry their asset row: the step that receives them in its ``ModelOutput`` writes those rows
in the transaction that records its result, so a result and its files appear together or
not at all. Inputs fetched for the item (``store_input``) are recorded at once: later steps
read them.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from typing import Protocol

from conveyor.assets.models import SOURCE_DERIVED, SOURCE_GENERATED, Asset
from conveyor.assets.service import AssetService, decode_data_url
from conveyor.core.db import Database
from conveyor.core.sizes import describe_size
from conveyor.errors import PayloadTooLarge
from conveyor.net.errors import FetchFailed
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

    async def vet(self, url: str) -> object:
        """Check ``url`` as a fetch would, without fetching (raise ``UrlRefused``)."""
        ...


@dataclass(frozen=True, slots=True)
class FreshFile(StoredFile):
    """A file stored during this run whose row is written by the step that returns it."""

    asset: Asset | None = None


def fresh_assets(files: list[StoredFile]) -> list[Asset]:
    """The rows a step must write for the files of its output."""
    return [f.asset for f in files if isinstance(f, FreshFile) and f.asset is not None]


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


def fresh(asset: Asset) -> FreshFile:
    return FreshFile(asset.id, asset.mime_type, asset.size, asset.sha256, asset)


class ItemFiles:
    # One per running item, thousands at once: no per-instance dict.
    __slots__ = (
        "_assets",
        "_client_id",
        "_db",
        "_downloader",
        "_item_id",
        "_job_id",
        "_link_for",
        "_max_bytes",
        "_results",
    )

    def __init__(
        self,
        db: Database,
        assets: AssetService,
        downloader: Downloader,
        *,
        client_id: str,
        job_id: str,
        item_id: str,
        max_bytes: int,
        link_for: Callable[[Asset], Awaitable[str | None]] | None = None,
        results: Downloader | None = None,
    ) -> None:
        self._db = db
        # Input URLs come through ``downloader``, provider results through ``results``.
        self._results = results or downloader
        self._assets = assets
        self._downloader = downloader
        self._client_id = client_id
        self._job_id = job_id
        self._item_id = item_id
        self._max_bytes = max_bytes
        self._link_for = link_for

    async def _asset(self, file: FileInput) -> Asset:
        if file.asset_id is None:
            raise PermanentProviderError("file input has neither asset_id nor url")
        async with self._db.read() as conn:
            return await self._assets.get(conn, file.asset_id, client_id=self._client_id)

    async def read(self, file: FileInput, *, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or self._max_bytes
        too_large = f"input file is larger than the limit of {describe_size(limit)}" + (
            "" if max_bytes else " (set by CONVEYOR_FETCH_MAX_BYTES)"
        )
        if file.url is not None:
            if file.url.startswith("data:"):
                data, _ = decode_data_url(file.url)
            else:
                async with self._downloader.stream(file.url, max_bytes=limit) as body:
                    data = await body.read()
            if len(data) > limit:
                raise PayloadTooLarge(too_large)
            return data
        asset = await self._asset(file)
        if asset.size > limit:
            raise PayloadTooLarge(too_large)
        return await self._assets.read_bytes(asset)

    async def url_for(self, file: FileInput) -> str:
        if file.url is not None:
            # The provider fetches it as given: only what we would fetch ourselves (checked
            # at submission too; this covers jobs queued before, or made another way). A host
            # not found from here is passed on: the provider may resolve it (split DNS).
            with suppress(FetchFailed):
                await self._downloader.vet(file.url)
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
        )
        return fresh(asset)

    async def store_from_url(self, url: str) -> StoredFile:
        return fresh(await self._download(url, source_type=SOURCE_GENERATED, via=self._results))

    async def store_input(self, url: str, *, accept: Collection[str] | None = None) -> StoredFile:
        """Store a client-given input URL as a derived asset of this item, recorded at once;
        with ``accept`` (e.g. ``image/*``) other content is refused before it is stored."""
        asset = await self._download(
            url, source_type=SOURCE_DERIVED, accept=accept, via=self._downloader
        )
        async with self._db.write() as conn:
            await self._assets.add(conn, asset)
        return stored(asset)

    async def _download(
        self,
        url: str,
        *,
        source_type: str,
        via: Downloader,
        accept: Collection[str] | None = None,
    ) -> Asset:
        async with via.stream(
            url, max_bytes=self._max_bytes, accept=accept, allow_data=True
        ) as body:
            length = body.content_length
            if length is not None and length <= min(_IN_MEMORY_BYTES, self._max_bytes):
                return await self._assets.store_bytes(
                    self._client_id,
                    await body.read(),
                    source_type=source_type,
                    job_id=self._job_id,
                    item_id=self._item_id,
                    meta=_source(url),
                )
            return await self._ingest(body, source_type, url=_without_data(url))

    async def _ingest(
        self, chunks: AsyncIterable[bytes], source_type: str, url: str | None
    ) -> Asset:
        return await self._assets.ingest(
            self._client_id,
            chunks,
            source_type=source_type,
            max_bytes=self._max_bytes,
            job_id=self._job_id,
            item_id=self._item_id,
            meta=_source(url),
        )
