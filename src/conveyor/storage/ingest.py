"""Taking in an upload or a download before it is stored: spool, hash, sniff, limit.

``ingest`` writes the incoming stream to a temporary file while computing its SHA-256, so
the content-addressed key is known before anything reaches the store and memory use stays
at one batch of chunks whatever the file size. It keeps the first bytes (``head``) for MIME
sniffing and stops with ``PayloadTooLarge`` the moment the limit is passed, deleting the
spool file, so an oversize upload costs no more than the limit in disk and bandwidth.
``store_ingested`` then uploads the spooled file unless the key already holds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from conveyor.core.sizes import describe_size
from conveyor.errors import PayloadTooLarge

if TYPE_CHECKING:
    from hashlib import _Hash

    from conveyor.storage.base import StorageBackend

HEAD_SIZE = 8192

# Hashing and writing run in a worker thread one batch at a time, not one chunk at a time.
_SPOOL_BATCH_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class IngestedFile:
    """A spooled temporary file with its digest; a context manager that deletes it."""

    path: Path
    sha256: str
    size: int
    head: bytes

    def discard(self) -> None:
        """Delete the temporary file; safe to call more than once."""
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> IngestedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()

    async def __aenter__(self) -> IngestedFile:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.discard)


async def ingest(
    chunks: AsyncIterable[bytes],
    *,
    max_bytes: int,
    tmp_dir: Path | None = None,
    head_size: int = HEAD_SIZE,
    limit_setting: str | None = None,
) -> IngestedFile:
    """Spool a stream to a temporary file, hashing it; ``PayloadTooLarge`` past ``max_bytes``
    (naming ``limit_setting``, the setting of that limit, when there is one)."""
    handle, path = await asyncio.to_thread(_open_spool_file, tmp_dir)
    hasher = hashlib.sha256()
    size = 0
    head = bytearray()
    batch: list[bytes] = []
    batch_size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"the file is larger than the limit of {describe_size(max_bytes)}"
                    + (f" (set by {limit_setting})" if limit_setting else ""),
                    details={"max_bytes": max_bytes},
                )
            if len(head) < head_size:
                head += chunk[: head_size - len(head)]
            batch.append(chunk)
            batch_size += len(chunk)
            if batch_size >= _SPOOL_BATCH_BYTES:
                await asyncio.to_thread(_spool, handle, hasher, batch)
                batch, batch_size = [], 0
        if batch:
            await asyncio.to_thread(_spool, handle, hasher, batch)
        await asyncio.to_thread(handle.close)
    except BaseException:
        # Synchronous so it also runs under cancellation; one close and one unlink.
        handle.close()
        path.unlink(missing_ok=True)
        raise
    return IngestedFile(path=path, sha256=hasher.hexdigest(), size=size, head=bytes(head))


async def store_ingested(
    backend: StorageBackend,
    ingested: IngestedFile,
    key: str,
    content_type: str | None = None,
) -> bool:
    """Upload the spooled file under ``key`` unless it is already stored; True if uploaded.

    Meant for content-addressed keys, where an existing object has the same bytes.
    """
    if await backend.exists(key):
        return False
    await backend.write_file(key, ingested.path, content_type=content_type)
    return True


def _open_spool_file(tmp_dir: Path | None) -> tuple[BinaryIO, Path]:
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="conveyor-ingest-", suffix=".part", dir=tmp_dir)
    return os.fdopen(fd, "wb"), Path(name)


def _spool(handle: BinaryIO, hasher: _Hash, batch: list[bytes]) -> None:
    # hashlib releases the GIL on large buffers, so this thread does not stall the loop.
    for chunk in batch:
        hasher.update(chunk)
    handle.writelines(batch)
