"""Assets: bytes in storage under content-addressed keys, a row per use.

Uploads are spooled to a temporary file while hashed, so a large file never sits in memory
and an oversize one is refused as soon as it passes the limit. The MIME type is sniffed from
the bytes; names and declared types are not trusted. Identical bytes are stored once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any
from urllib.parse import unquote_to_bytes

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets import repository
from conveyor.assets.models import SOURCE_GENERATED, SOURCE_UPLOADED
from conveyor.assets.repository import Asset
from conveyor.content.sniff import extension_for, sniff_mime
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.core.ids import new_id
from conveyor.errors import BadRequest, NotFound, UnsupportedMediaType
from conveyor.storage import StorageBackend, content_key, ingest, store_ingested
from conveyor.storage.ingest import HEAD_SIZE

OCTET_STREAM = "application/octet-stream"


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def decode_data_url(url: str) -> tuple[bytes, str | None]:
    """Bytes and declared type of a ``data:`` URL (base64 or percent-encoded)."""
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:"):
        raise BadRequest("malformed data: URL")
    declared = header[5:].split(";")[0] or None
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False), declared
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("data: URL is not valid base64") from exc
    return unquote_to_bytes(payload), declared


class AssetService:
    def __init__(
        self,
        db: Database,
        storage: StorageBackend,
        clock: Clock,
        *,
        max_upload_bytes: int,
    ) -> None:
        self.db = db
        self.storage = storage
        self.clock = clock
        self.max_upload_bytes = max_upload_bytes

    async def ingest(
        self,
        client_id: str,
        chunks: AsyncIterable[bytes],
        *,
        filename: str | None = None,
        source_type: str = SOURCE_UPLOADED,
        allowed_types: frozenset[str] | None = None,
        max_bytes: int | None = None,
        job_id: str | None = None,
        item_id: str | None = None,
        parent_asset_id: str | None = None,
        meta: dict[str, Any] | None = None,
        record: bool = True,
    ) -> Asset:
        """Store a stream as a new asset (the bytes once per content, the row always).

        With ``record=False`` the row is not written: the caller adds it with ``record()``
        inside its own transaction (the engine writes it together with the step's result).
        """
        async with await ingest(chunks, max_bytes=max_bytes or self.max_upload_bytes) as spooled:
            mime = sniff_mime(spooled.head) or OCTET_STREAM
            if allowed_types is not None and mime not in allowed_types:
                raise UnsupportedMediaType(
                    f"content is {mime}; accepted: {', '.join(sorted(allowed_types))}"
                )
            if spooled.size == 0:
                raise BadRequest("the file is empty")
            key = content_key(spooled.sha256, extension_for(mime))
            await store_ingested(self.storage, spooled, key, mime)
        return await self._register(
            Asset(
                id=new_id(),
                client_id=client_id,
                sha256=spooled.sha256,
                mime_type=mime,
                size=spooled.size,
                storage_key=key,
                source_type=source_type,
                parent_asset_id=parent_asset_id,
                job_id=job_id,
                item_id=item_id,
                filename=_clean_filename(filename),
                meta=meta,
                created_at=self.clock.now(),
            ),
            record=record,
        )

    async def _register(self, asset: Asset, *, record: bool) -> Asset:
        if record:
            async with self.db.write() as conn:
                await repository.insert_asset(conn, asset)
        return asset

    async def record(self, conn: AsyncConnection, assets: list[Asset]) -> None:
        """Write asset rows in the caller's transaction (see ``ingest(record=False)``)."""
        for asset in assets:
            await repository.insert_asset(conn, asset)

    async def store_bytes(
        self,
        client_id: str,
        data: bytes,
        *,
        filename: str | None = None,
        source_type: str = SOURCE_GENERATED,
        job_id: str | None = None,
        item_id: str | None = None,
        parent_asset_id: str | None = None,
        meta: dict[str, Any] | None = None,
        record: bool = True,
    ) -> Asset:
        """Store bytes already in memory (no spooling: they are hashed and written once)."""
        if not data:
            raise BadRequest("the file is empty")
        mime = sniff_mime(data[:HEAD_SIZE]) or OCTET_STREAM
        digest = hashlib.sha256(data).hexdigest()
        key = content_key(digest, extension_for(mime))
        if not await self.storage.exists(key):
            await self.storage.write(key, _one_chunk(data), content_type=mime)
        asset = Asset(
            id=new_id(),
            client_id=client_id,
            sha256=digest,
            mime_type=mime,
            size=len(data),
            storage_key=key,
            source_type=source_type,
            parent_asset_id=parent_asset_id,
            job_id=job_id,
            item_id=item_id,
            filename=_clean_filename(filename),
            meta=meta,
            created_at=self.clock.now(),
        )
        return await self._register(asset, record=record)

    async def get(self, asset_id: str, *, client_id: str | None = None) -> Asset:
        """The asset, if it exists and (when ``client_id`` is given) belongs to that client."""
        async with self.db.read() as conn:
            asset = await repository.get_asset(conn, asset_id)
        if asset is None or (client_id is not None and asset.client_id != client_id):
            raise NotFound(f"asset {asset_id} not found")
        return asset

    async def get_many(self, asset_ids: list[str]) -> dict[str, Asset]:
        async with self.db.read() as conn:
            return await repository.get_assets(conn, asset_ids)

    async def read_bytes(self, asset: Asset) -> bytes:
        return await self.storage.read_bytes(asset.storage_key)

    def stream(self, asset: Asset) -> AsyncIterator[bytes]:
        return self.storage.read(asset.storage_key)


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    # Keep the last path segment only; browsers and zip tools treat slashes as folders.
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:255] or None
