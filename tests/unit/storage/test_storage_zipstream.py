"""Streaming ZIP: what zipfile reads back, names made safe and unique, bounded memory."""

from __future__ import annotations

import hashlib
import io
import struct
import tracemalloc
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import pytest

from conveyor.storage import (
    MemoryStorage,
    ObjectNotFound,
    StorageError,
    ZipEntry,
    safe_zip_name,
    stream_zip,
)
from tests.unit.storage.backend_contract import random_bytes, stream_of, stream_parts

MiB = 1024 * 1024


async def zip_bytes(entries: list[ZipEntry]) -> bytes:
    return b"".join([piece async for piece in stream_zip(entries)])


def read_archive(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


async def test_entries_round_trip_through_zipfile() -> None:
    storage = MemoryStorage()
    stored = random_bytes(200_000, seed=1)
    await storage.write("results/final.png", stream_parts([stored]))
    generated = random_bytes(150_000, seed=2)

    def generate() -> AsyncIterator[bytes]:
        return stream_of(generated, 10_000)

    archive = await zip_bytes(
        [
            ZipEntry("report.json", stream_parts([b'{"ok": ', b"true}"]), size=12),
            ZipEntry("images/final.png", lambda: storage.open("results/final.png")),
            ZipEntry("images/generated.bin", generate, size=len(generated)),
            ZipEntry("empty.txt", stream_parts([]), size=0),
        ]
    )

    assert read_archive(archive) == {
        "report.json": b'{"ok": true}',
        "images/final.png": stored,
        "images/generated.bin": generated,
        "empty.txt": b"",
    }


async def test_many_entries() -> None:
    entries = [
        ZipEntry(f"item-{index:04d}.txt", stream_parts([f"item {index}".encode()]))
        for index in range(1500)
    ]

    contents = read_archive(await zip_bytes(entries))

    assert len(contents) == 1500
    assert contents["item-0000.txt"] == b"item 0"
    assert contents["item-1499.txt"] == b"item 1499"


async def test_async_iterable_of_entries_is_accepted() -> None:
    async def entries() -> AsyncIterator[ZipEntry]:
        for index in range(3):
            yield ZipEntry(f"{index}.txt", stream_parts([str(index).encode()]))

    archive = b"".join([piece async for piece in stream_zip(entries())])

    assert read_archive(archive) == {"0.txt": b"0", "1.txt": b"1", "2.txt": b"2"}


async def test_duplicate_names_are_made_unique_case_insensitively() -> None:
    names = ["photo.png", "photo.png", "PHOTO.png", "photo (2).png", "dir/a", "dir/a", ".env"]
    entries = [ZipEntry(name, stream_parts([str(i).encode()])) for i, name in enumerate(names)]

    with zipfile.ZipFile(io.BytesIO(await zip_bytes(entries))) as archive:
        assert archive.namelist() == [
            "photo.png",
            "photo (2).png",
            "PHOTO (3).png",
            "photo (2) (2).png",
            "dir/a",
            "dir/a (2)",
            ".env",
        ]
        assert archive.read("PHOTO (3).png") == b"2"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "etc/passwd"),
        ("/absolute/file.png", "absolute/file.png"),
        ("C:\\Windows\\system.ini", "Windows/system.ini"),
        ("a/./b/../c.txt", "a/b/c.txt"),
        ("what?<is>:this*.png", "what__is__this_.png"),
        ("tab\there\x00.png", "tab_here_.png"),
        ("trailing dot. ", "trailing dot"),
        ("", "file"),
        ("../..", "file"),
        ("Фото товара.png", "Фото товара.png"),
    ],
)
def test_unsafe_names_are_made_safe(name: str, safe: str) -> None:
    assert safe_zip_name(name) == safe


async def test_archive_never_contains_an_escaping_path() -> None:
    names = ["../../etc/passwd", "/etc/shadow", "..\\..\\boot.ini", "..", "ok.txt"]
    entries = [ZipEntry(name, stream_parts([b"x"])) for name in names]

    with zipfile.ZipFile(io.BytesIO(await zip_bytes(entries))) as archive:
        for name in archive.namelist():
            assert not name.startswith("/")
            assert ".." not in name.split("/")
            assert "\\" not in name


async def test_modified_time_is_kept_in_utc() -> None:
    plus_three = timezone(timedelta(hours=3))
    entries = [
        ZipEntry(
            "aware",
            stream_parts([b"a"]),
            modified=datetime(2024, 5, 6, 10, 20, 30, tzinfo=plus_three),
        ),
        ZipEntry("naive", stream_parts([b"n"]), modified=datetime(2023, 1, 2, 3, 4, 6)),
        ZipEntry("ancient", stream_parts([b"o"]), modified=datetime(1970, 1, 1, tzinfo=UTC)),
    ]

    with zipfile.ZipFile(io.BytesIO(await zip_bytes(entries))) as archive:
        assert archive.getinfo("aware").date_time == (2024, 5, 6, 7, 20, 30)
        assert archive.getinfo("naive").date_time == (2023, 1, 2, 3, 4, 6)
        assert archive.getinfo("ancient").date_time == (1980, 1, 1, 0, 0, 0)


def local_header_extra(data: bytes, info: zipfile.ZipInfo) -> bytes:
    start = info.header_offset
    name_length, extra_length = struct.unpack("<HH", data[start + 26 : start + 30])
    extra_start = start + 30 + name_length
    return data[extra_start : extra_start + extra_length]


async def test_unknown_size_uses_zip64_and_known_small_size_does_not() -> None:
    data = await zip_bytes(
        [
            ZipEntry("unknown", stream_parts([b"abc"])),
            ZipEntry("known", stream_parts([b"abc"]), size=3),
        ]
    )

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("unknown") == b"abc"
        # 0x0001 is the ZIP64 extended-information extra field.
        assert local_header_extra(data, archive.getinfo("unknown")).startswith(b"\x01\x00")
        assert local_header_extra(data, archive.getinfo("known")) == b""


async def test_announced_size_must_match_the_stream() -> None:
    entries = [ZipEntry("short", stream_parts([b"abc"]), size=10)]

    with pytest.raises(StorageError, match="announced 10 bytes"):
        await zip_bytes(entries)


async def test_missing_source_object_surfaces_to_the_consumer() -> None:
    storage = MemoryStorage()
    entries = [ZipEntry("gone.png", lambda: storage.open("not/there"))]

    with pytest.raises(ObjectNotFound):
        await zip_bytes(entries)


async def test_output_flows_before_later_entries_are_opened() -> None:
    opened: list[str] = []

    def source(name: str) -> AsyncIterator[bytes]:
        opened.append(name)
        return stream_of(random_bytes(300_000), 64_000)

    entries = [ZipEntry(name, partial(source, name)) for name in ("first", "second")]
    pieces = stream_zip(entries)

    first_piece = await anext(pieces)

    assert first_piece.startswith(b"PK\x03\x04")
    assert opened == ["first"]
    rest = [piece async for piece in pieces]
    assert opened == ["first", "second"]
    assert set(read_archive(first_piece + b"".join(rest))) == {"first", "second"}


async def test_empty_archive_is_valid() -> None:
    assert read_archive(await zip_bytes([])) == {}


async def test_large_entry_streams_with_bounded_memory(tmp_path: Path) -> None:
    size = 60 * MiB
    pattern = random_bytes(MiB, seed=3)
    expected = hashlib.sha256()
    for _ in range(size // MiB):
        expected.update(pattern)

    async def sixty_megabytes() -> AsyncIterator[bytes]:
        for _ in range(size // MiB):
            # A fresh object per chunk, as a real reader would produce.
            yield bytes(memoryview(pattern))

    output = tmp_path / "large.zip"
    tracemalloc.start()
    try:
        with output.open("wb") as sink:
            entries = [ZipEntry("large.bin", sixty_megabytes, size=size)]
            async for piece in stream_zip(entries):
                sink.write(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * MiB, f"peak traced memory {peak} bytes for a {size}-byte entry"
    with zipfile.ZipFile(output) as archive, archive.open("large.bin") as member:
        actual = hashlib.sha256()
        while chunk := member.read(MiB):
            actual.update(chunk)
    assert actual.hexdigest() == expected.hexdigest()
    assert output.stat().st_size > size


async def test_deflate_can_be_chosen_for_compressible_content() -> None:
    text = b"the same line of text\n" * 10_000
    entries = [ZipEntry("log.txt", stream_of(text, 4096), size=len(text))]

    archive = b"".join([p async for p in stream_zip(entries, compression=zipfile.ZIP_DEFLATED)])

    assert len(archive) < len(text) // 10
    assert read_archive(archive) == {"log.txt": text}
