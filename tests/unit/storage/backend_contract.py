"""The behaviour every storage backend promises, written once and run against each.

A test module subclasses ``StorageContract`` and provides a ``storage`` fixture; the memory
and local backends run it in the unit suite, S3 against a real S3-compatible server in the
integration suite. Large streams are 12 MiB so that S3 (with 5 MiB parts) takes its
multipart path.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from conveyor.storage import (
    InvalidKey,
    ObjectNotFound,
    StorageBackend,
    content_key,
)

LARGE_SIZE = 12 * 1024 * 1024 + 123
PAUSE_AFTER = 6 * 1024 * 1024

BAD_KEYS = [
    "",
    "../escape",
    "a/../../escape",
    "/absolute",
    "a\\b",
    "a\x00b",
    "a//b",
    "a/./b",
    "trailing/",
    "line\nbreak",
]


def random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


async def stream_of(data: bytes, chunk_size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]


async def stream_parts(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(storage: StorageBackend, key: str, chunk_size: int = 1 << 20) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, chunk_size=chunk_size)])


class StorageContract:
    """Subclasses provide a ``storage`` fixture yielding an empty backend."""

    async def test_write_returns_size_and_read_gives_bytes_back(
        self, storage: StorageBackend
    ) -> None:
        data = random_bytes(300_000)

        written = await storage.write("a/b/object.bin", stream_of(data, 65_536))

        assert written == len(data)
        assert await read_all(storage, "a/b/object.bin") == data
        assert await storage.read_bytes("a/b/object.bin") == data
        assert await storage.size("a/b/object.bin") == len(data)
        assert await storage.exists("a/b/object.bin")

    async def test_open_knows_size_and_streams_in_bounded_chunks(
        self, storage: StorageBackend
    ) -> None:
        data = random_bytes(10_000)
        await storage.write("obj", stream_of(data, 4096))

        async with await storage.open("obj", chunk_size=1000) as stream:
            assert stream.size == len(data)
            chunks = [chunk async for chunk in stream]

        assert b"".join(chunks) == data
        assert len(chunks) >= 10
        assert all(0 < len(chunk) <= 1000 for chunk in chunks)

    async def test_empty_object_is_stored(self, storage: StorageBackend) -> None:
        assert await storage.write("empty", stream_parts([])) == 0

        assert await storage.exists("empty")
        assert await storage.size("empty") == 0
        assert await storage.read_bytes("empty") == b""

    async def test_missing_key_is_reported_before_any_byte_is_read(
        self, storage: StorageBackend
    ) -> None:
        assert not await storage.exists("missing/key")
        with pytest.raises(ObjectNotFound) as raised:
            await storage.open("missing/key")
        assert raised.value.status_code == 404
        with pytest.raises(ObjectNotFound):
            await storage.size("missing/key")
        with pytest.raises(ObjectNotFound):
            await storage.read_bytes("missing/key")

    async def test_read_reports_missing_key_on_first_iteration(
        self, storage: StorageBackend
    ) -> None:
        chunks = storage.read("missing")

        with pytest.raises(ObjectNotFound):
            await anext(chunks)

    async def test_write_replaces_existing_object(self, storage: StorageBackend) -> None:
        await storage.write("obj", stream_parts([b"old content, longer"]))

        await storage.write("obj", stream_parts([b"new"]))

        assert await storage.read_bytes("obj") == b"new"
        assert await storage.size("obj") == 3

    async def test_delete_removes_and_is_idempotent(self, storage: StorageBackend) -> None:
        await storage.write("obj", stream_parts([b"x"]))

        await storage.delete("obj")
        await storage.delete("obj")
        await storage.delete("never/existed")

        assert not await storage.exists("obj")
        with pytest.raises(ObjectNotFound):
            await storage.open("obj")

    async def test_failed_stream_stores_nothing(self, storage: StorageBackend) -> None:
        async def failing() -> AsyncIterator[bytes]:
            yield random_bytes(PAUSE_AFTER)
            raise RuntimeError("source broke")

        with pytest.raises(RuntimeError, match="source broke"):
            await storage.write("obj", failing())

        assert not await storage.exists("obj")

    async def test_failed_overwrite_keeps_previous_object(self, storage: StorageBackend) -> None:
        await storage.write("obj", stream_parts([b"previous"]))

        async def failing() -> AsyncIterator[bytes]:
            yield b"partial"
            raise RuntimeError("source broke")

        with pytest.raises(RuntimeError):
            await storage.write("obj", failing())

        assert await storage.read_bytes("obj") == b"previous"

    async def test_reader_never_sees_an_object_being_written(self, storage: StorageBackend) -> None:
        data = random_bytes(LARGE_SIZE)
        await storage.write("obj", stream_parts([b"previous version"]))
        paused = asyncio.Event()
        resume = asyncio.Event()

        async def slow_source() -> AsyncIterator[bytes]:
            yield data[:PAUSE_AFTER]
            paused.set()
            await resume.wait()
            yield data[PAUSE_AFTER:]

        write = asyncio.create_task(storage.write("obj", slow_source()))
        await paused.wait()
        try:
            assert await storage.read_bytes("obj") == b"previous version"
            assert await storage.size("obj") == len(b"previous version")
        finally:
            resume.set()
        await write

        assert await storage.size("obj") == len(data)
        assert await read_all(storage, "obj") == data

    async def test_absent_until_write_completes(self, storage: StorageBackend) -> None:
        paused = asyncio.Event()
        resume = asyncio.Event()

        async def slow_source() -> AsyncIterator[bytes]:
            yield random_bytes(PAUSE_AFTER)
            paused.set()
            await resume.wait()
            yield b"tail"

        write = asyncio.create_task(storage.write("obj", slow_source()))
        await paused.wait()
        try:
            assert not await storage.exists("obj")
            with pytest.raises(ObjectNotFound):
                await storage.open("obj")
        finally:
            resume.set()
        assert await write == PAUSE_AFTER + 4
        assert await storage.exists("obj")

    async def test_large_stream_in_many_chunks_round_trips(self, storage: StorageBackend) -> None:
        data = random_bytes(LARGE_SIZE)

        written = await storage.write(
            "large.bin", stream_of(data, 700 * 1024), content_type="application/octet-stream"
        )

        assert written == len(data)
        assert await storage.size("large.bin") == len(data)
        digest = hashlib.sha256()
        async for chunk in storage.read("large.bin"):
            digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()

    async def test_concurrent_writes_and_reads(self, storage: StorageBackend) -> None:
        payloads = {f"batch/{index}": random_bytes(20_000, seed=index) for index in range(20)}

        written = await asyncio.gather(
            *(storage.write(key, stream_of(data, 5000)) for key, data in payloads.items())
        )
        contents = await asyncio.gather(*(storage.read_bytes(key) for key in payloads))

        assert written == [20_000] * 20
        assert dict(zip(payloads, contents, strict=True)) == payloads

    async def test_write_file_stores_a_local_file(
        self, storage: StorageBackend, tmp_path: Path
    ) -> None:
        data = random_bytes(2_500_000)
        source = tmp_path / "upload.bin"
        source.write_bytes(data)

        await storage.write_file("from-file", source, content_type="image/png")

        assert await storage.read_bytes("from-file") == data
        assert source.read_bytes() == data

    async def test_content_addressed_and_unicode_keys_work(self, storage: StorageBackend) -> None:
        keys = [content_key(hashlib.sha256(b"x").hexdigest(), "png"), "jobs/1/Фото товара 1.png"]
        for key in keys:
            await storage.write(key, stream_parts([key.encode()]))

        for key in keys:
            assert await storage.read_bytes(key) == key.encode()

    @pytest.mark.parametrize("key", BAD_KEYS)
    async def test_unsafe_keys_are_rejected(self, storage: StorageBackend, key: str) -> None:
        with pytest.raises(InvalidKey):
            await storage.write(key, stream_parts([b"x"]))
        with pytest.raises(InvalidKey):
            await storage.open(key)
        with pytest.raises(InvalidKey):
            await storage.exists(key)
        with pytest.raises(InvalidKey):
            await storage.delete(key)

    async def test_check_passes_on_a_working_store(self, storage: StorageBackend) -> None:
        await storage.check()
