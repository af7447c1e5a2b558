"""Assets: bytes in storage under content-addressed keys, a row per use.

Storing and recording are two steps on purpose. ``ingest``/``store_bytes`` write the bytes
(outside any transaction: a slow upload must not hold the database) and return the asset's
row, not yet written; the caller records it with ``add`` in its own short transaction, next
to whatever refers to it (the engine writes a step's files with the step's result). Bytes
are content-addressed, so storing twice is harmless and a rolled-back row leaves nothing a
client can see.

Uploads are spooled to a temporary file while hashed, so a large file never sits in memory
and an oversize one is refused as soon as it passes the limit. The MIME type is sniffed from
the bytes; names and declared types are not trusted. Identical bytes are stored once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets import repository
from conveyor.assets.models import SOURCE_GENERATED, SOURCE_UPLOADED, Asset
from conveyor.content.serving import served_as
from conveyor.content.sniff import extension_for, sniff_mime
from conveyor.core.clock import Clock
from conveyor.core.http import nul_refusal
from conveyor.core.ids import new_id
from conveyor.errors import BadRequest, NotFound, UnsupportedMediaType
from conveyor.storage import ObjectStream, StorageBackend, content_key, ingest, store_ingested
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
        storage: StorageBackend,
        clock: Clock,
        *,
        max_upload_bytes: int,
    ) -> None:
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
    ) -> Asset:
        """Store a stream's bytes (once per content); returns the row to ``add``."""
        if filename is not None and "\x00" in filename:
            raise nul_refusal("the file name")
        async with await ingest(
            chunks,
            max_bytes=max_bytes or self.max_upload_bytes,
            limit_setting=None if max_bytes else "CONVEYOR_MAX_UPLOAD_BYTES",
        ) as spooled:
            mime = sniff_mime(spooled.head) or OCTET_STREAM
            if allowed_types is not None and mime not in allowed_types:
                raise UnsupportedMediaType(
                    f"content is {mime}; accepted: {', '.join(sorted(allowed_types))}"
                )
            if spooled.size == 0:
                raise BadRequest("the file is empty")
            key = content_key(spooled.sha256, extension_for(mime))
            await store_ingested(self.storage, spooled, key, _stored_type(mime))
        return Asset(
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
        )

    async def add(self, conn: AsyncConnection, *assets: Asset) -> None:
        """Write the rows of stored assets in the caller's transaction."""
        await repository.insert_assets(conn, list(assets))

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
    ) -> Asset:
        """Store bytes already in memory (hashed and written once); returns the row to
        ``add``."""
        if not data:
            raise BadRequest("the file is empty")
        mime = sniff_mime(data[:HEAD_SIZE]) or OCTET_STREAM
        digest = hashlib.sha256(data).hexdigest()
        key = content_key(digest, extension_for(mime))
        if not await self.storage.exists(key):
            await self.storage.write(key, _one_chunk(data), content_type=_stored_type(mime))
        return Asset(
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

    async def get(
        self, conn: AsyncConnection, asset_id: str, *, client_id: str | None = None
    ) -> Asset:
        """The asset, if it exists and (when ``client_id`` is given) belongs to that client."""
        asset = await repository.get_asset(conn, asset_id)
        if asset is None or (client_id is not None and asset.client_id != client_id):
            raise NotFound(f"asset {asset_id} not found")
        return asset

    async def get_many(self, conn: AsyncConnection, asset_ids: list[str]) -> dict[str, Asset]:
        return await repository.get_assets(conn, asset_ids)

    async def list_images(
        self,
        conn: AsyncConnection,
        client_id: str,
        *,
        limit: int,
        before: tuple[datetime, str] | None = None,
    ) -> list[Asset]:
        """The client's images (uploads and results), newest first."""
        return await repository.list_assets(
            conn, client_id, mime_prefix="image/", limit=limit, before=before
        )

    async def attach_to_item(
        self, conn: AsyncConnection, asset_id: str, job_id: str, item_id: str
    ) -> None:
        """An upload that belongs to one item only (a photo sent with its job): it is kept
        and purged with the job, like the files the item makes."""
        await repository.attach_to_item(conn, asset_id, job_id, item_id)

    async def delete_of_jobs(self, conn: AsyncConnection, job_ids: list[str]) -> set[str]:
        """Delete the rows of the jobs' assets; returns their storage keys. The bytes stay:
        other assets may share them (see ``storage_keys_in_use``, ``delete_bytes``)."""
        return set(await repository.delete_assets_of_jobs(conn, job_ids))

    async def delete(self, conn: AsyncConnection, asset_ids: list[str]) -> set[str]:
        """Delete these rows; returns their storage keys. The bytes stay: see
        ``delete_of_jobs``."""
        return set(await repository.delete_assets(conn, asset_ids))

    async def storage_keys_in_use(self, conn: AsyncConnection, keys: list[str]) -> set[str]:
        return await repository.storage_keys_in_use(conn, keys)

    async def delete_bytes(self, storage_key: str) -> None:
        await self.storage.delete(storage_key)

    async def read_bytes(self, asset: Asset) -> bytes:
        return await self.storage.read_bytes(asset.storage_key)

    def stream(self, asset: Asset) -> AsyncIterator[bytes]:
        return self.storage.read(asset.storage_key)

    async def open(self, asset: Asset) -> ObjectStream:
        """The asset's bytes as a stream opened now (a missing object fails here, before an
        answer starts)."""
        return await self.storage.open(asset.storage_key)


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    # Keep the last path segment only; browsers and zip tools treat slashes as folders.
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:255] or None


def _stored_type(mime: str) -> str:
    """The type an object store answers the bytes with when it serves them itself (a public
    bucket, a presigned link): the same rule as our own routes, so HTML or SVG stored in S3
    downloads rather than runs in the bucket's origin. The row keeps the sniffed type."""
    return served_as(mime).media_type
