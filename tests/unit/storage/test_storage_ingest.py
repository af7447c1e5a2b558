"""Ingesting streams: digest and size, the size limit, cleanup, and dedupe on store."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.errors import PayloadTooLarge
from conveyor.storage import MemoryStorage, content_key, ingest, store_ingested
from conveyor.storage.ingest import HEAD_SIZE
from tests.unit.storage.backend_contract import random_bytes, stream_of, stream_parts


async def test_ingest_hashes_sizes_and_spools_the_stream(tmp_path: Path) -> None:
    data = random_bytes(3 * 1024 * 1024 + 17)

    ingested = await ingest(stream_of(data, 100_000), max_bytes=len(data), tmp_dir=tmp_path)

    with ingested:
        assert ingested.sha256 == hashlib.sha256(data).hexdigest()
        assert ingested.size == len(data)
        assert ingested.head == data[:HEAD_SIZE]
        assert ingested.path.parent == tmp_path
        assert ingested.path.read_bytes() == data
    assert not ingested.path.exists()


async def test_head_is_gathered_across_small_and_empty_chunks(tmp_path: Path) -> None:
    data = random_bytes(20_000)
    pieces = [data[:10], b"", data[10:5000], b"", data[5000:]]

    async with await ingest(stream_parts(pieces), max_bytes=10**6, tmp_dir=tmp_path) as ingested:
        assert ingested.head == data[:HEAD_SIZE]
        assert ingested.sha256 == hashlib.sha256(data).hexdigest()
        path = ingested.path
    assert not path.exists()


async def test_empty_stream_is_a_valid_empty_file(tmp_path: Path) -> None:
    with await ingest(stream_parts([]), max_bytes=1, tmp_dir=tmp_path) as ingested:
        assert ingested.size == 0
        assert ingested.head == b""
        assert ingested.sha256 == hashlib.sha256(b"").hexdigest()


async def test_stream_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    with await ingest(stream_parts([b"12345"]), max_bytes=5, tmp_dir=tmp_path) as ingested:
        assert ingested.size == 5


async def test_oversize_stream_stops_early_and_leaves_no_file(tmp_path: Path) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(PayloadTooLarge) as raised:
        await ingest(endless(), max_bytes=10_500, tmp_dir=tmp_path)

    assert raised.value.status_code == 413
    assert raised.value.details == {"max_bytes": 10_500}
    assert pulled == 11
    assert list(tmp_path.iterdir()) == []


async def test_failing_source_leaves_no_file(tmp_path: Path) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield random_bytes(2 * 1024 * 1024)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await ingest(failing(), max_bytes=10**9, tmp_dir=tmp_path)

    assert list(tmp_path.iterdir()) == []


async def test_missing_tmp_dir_is_created(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool" / "nested"

    with await ingest(stream_parts([b"abc"]), max_bytes=10, tmp_dir=spool_dir) as ingested:
        assert ingested.path.parent == spool_dir


async def test_store_ingested_uploads_once_per_content(tmp_path: Path) -> None:
    storage = MemoryStorage()
    data = random_bytes(50_000)

    with await ingest(stream_parts([data]), max_bytes=10**6, tmp_dir=tmp_path) as first:
        key = content_key(first.sha256, "bin")
        assert await store_ingested(storage, first, key, "application/octet-stream")

    with await ingest(stream_parts([data]), max_bytes=10**6, tmp_dir=tmp_path) as second:
        assert content_key(second.sha256, "bin") == key
        assert not await store_ingested(storage, second, key, "application/octet-stream")

    assert storage.keys() == [key]
    assert await storage.read_bytes(key) == data


async def test_store_ingested_skips_the_upload_when_key_exists(tmp_path: Path) -> None:
    storage = MemoryStorage()
    await storage.write("taken", stream_parts([b"already there"]))

    with await ingest(stream_parts([b"other bytes"]), max_bytes=100, tmp_dir=tmp_path) as file:
        uploaded = await store_ingested(storage, file, "taken")

    assert uploaded is False
    assert await storage.read_bytes("taken") == b"already there"
