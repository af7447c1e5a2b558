"""A storage backend in a dict, for tests and ``CONVEYOR_STORAGE=memory``.

It follows the same contract as the real backends (key checks, atomic writes, eager
``open``) so code tested against it behaves the same on disk or S3. Objects live as long
as the backend object; nothing is shared between processes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

from conveyor.storage.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectNotFound,
    ObjectStream,
    StorageBackend,
)
from conveyor.storage.keys import check_key


@dataclass(frozen=True, slots=True)
class _StoredObject:
    data: bytes
    content_type: str | None


class MemoryStorage(StorageBackend):
    """Objects held in process memory."""

    def __init__(self) -> None:
        self._objects: dict[str, _StoredObject] = {}

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        check_key(key)
        # Collected first and published in one assignment: a failing stream stores nothing.
        data = b"".join([bytes(chunk) async for chunk in chunks])
        self._objects[key] = _StoredObject(data, content_type)
        return len(data)

    async def open(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        stored = self._get(key)
        return ObjectStream(
            _slices(stored.data, chunk_size),
            size=len(stored.data),
            content_type=stored.content_type,
        )

    async def read_bytes(self, key: str) -> bytes:
        return self._get(key).data

    async def exists(self, key: str) -> bool:
        return check_key(key) in self._objects

    async def size(self, key: str) -> int:
        return len(self._get(key).data)

    async def delete(self, key: str) -> None:
        self._objects.pop(check_key(key), None)

    async def check(self) -> None:
        return None

    def keys(self) -> list[str]:
        """Every stored key, sorted; for tests and debugging."""
        return sorted(self._objects)

    def _get(self, key: str) -> _StoredObject:
        try:
            return self._objects[check_key(key)]
        except KeyError:
            raise ObjectNotFound(key) from None


async def _slices(data: bytes, chunk_size: int) -> AsyncGenerator[bytes, None]:
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start : start + chunk_size])
