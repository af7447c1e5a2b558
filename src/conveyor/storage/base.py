"""The storage port: where asset bytes live, whatever holds them.

A backend stores opaque objects under slash-separated keys (see ``keys.check_key``). Writes
take a stream and are atomic: an object is either absent or complete, never half-written,
so a crash or a failed upload leaves nothing a reader could mistake for the file. Reads
stream too, in two steps on purpose: ``await backend.open(key)`` finds the object and
raises ``ObjectNotFound`` *before* any byte is read, which lets a web handler answer 404
instead of starting a 200 it cannot finish; the returned ``ObjectStream`` knows the size
(for ``Content-Length``) and yields the bytes. ``read`` is the lazy shorthand for code that
does not care when the miss is noticed.

Errors: ``ObjectNotFound`` (404) for a missing key, ``StorageUnavailable`` (503) when the
store cannot be reached or written (worth retrying), ``InvalidKey`` (400) for a key no
backend accepts, all under ``StorageError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

from conveyor.errors import BadRequest, ConveyorError, NotFound, ServiceUnavailable

DEFAULT_CHUNK_SIZE = 1 << 20


class StorageError(ConveyorError):
    """Base of every storage failure."""

    status_code = 500
    code = "STORAGE_ERROR"


class ObjectNotFound(StorageError, NotFound):
    """No object is stored under the key."""

    status_code = 404
    code = "OBJECT_NOT_FOUND"

    def __init__(self, key: str) -> None:
        super().__init__(f"no stored object at {key!r}", details={"key": key})
        self.key = key


class StorageUnavailable(StorageError, ServiceUnavailable):
    """The store cannot be reached or written right now; retrying later may work."""

    status_code = 503
    code = "STORAGE_UNAVAILABLE"


class InvalidKey(StorageError, BadRequest):
    """A key that could escape its namespace or that some backend cannot represent."""

    status_code = 400
    code = "INVALID_STORAGE_KEY"


class ObjectStream:
    """An opened object: found, its size known, its bytes not read yet.

    Iterate it to get the bytes, or use it as an async context manager so the underlying
    file or connection is released even when the bytes are never read.
    """

    __slots__ = ("_chunks", "_release", "content_type", "size")

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        *,
        size: int,
        content_type: str | None = None,
        release: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._chunks = chunks
        self._release = release
        self.size = size
        self.content_type = content_type

    def __aiter__(self) -> ObjectStream:
        return self

    async def __anext__(self) -> bytes:
        return await anext(self._chunks)

    async def aclose(self) -> None:
        """Release the file or connection; safe to call more than once."""
        # A generator that never started would not run its own cleanup, hence the explicit
        # release hook next to closing the generator.
        await self._chunks.aclose()
        release, self._release = self._release, None
        if release is not None:
            await release()

    async def __aenter__(self) -> ObjectStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


async def file_chunks(path: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
    """Stream a local file in chunks, reading off the event loop."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        handle.close()


class StorageBackend(Protocol):
    """Where asset bytes live. Backends subclass this to inherit the shared methods."""

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        """Store the stream under ``key`` atomically (replacing any object); bytes written."""
        ...

    async def open(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        """Find the object now (``ObjectNotFound`` if absent); stream its bytes later."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int:
        """The object's size in bytes; ``ObjectNotFound`` if absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    async def check(self) -> None:
        """Readiness probe: return if the store can be written, else ``StorageUnavailable``."""
        ...

    async def close(self) -> None:
        """Release connections; the backend is not used afterwards."""
        return None

    async def write_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        """Store a local file under ``key`` atomically."""
        await self.write(key, file_chunks(path), content_type=content_type)

    async def read(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Stream the object; ``ObjectNotFound`` surfaces on the first iteration."""
        async with await self.open(key, chunk_size=chunk_size) as stream:
            async for chunk in stream:
                yield chunk

    async def read_bytes(self, key: str) -> bytes:
        """The whole object in memory; for small objects only."""
        async with await self.open(key) as stream:
            return b"".join([chunk async for chunk in stream])

    async def presigned_url(self, key: str, *, expires: int = 3600) -> str | None:
        """A time-limited URL clients can fetch directly, or None if the backend has none."""
        return None
