"""The storage contract on the memory and local backends, plus what only the local one does."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.storage import (
    InvalidKey,
    LocalStorage,
    MemoryStorage,
    S3Storage,
    StorageBackend,
    StorageUnavailable,
    create_storage,
)
from conveyor.storage.local import INCOMING_DIR
from tests.unit.storage.backend_contract import (
    BAD_KEYS,
    StorageContract,
    random_bytes,
    stream_parts,
)


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[StorageBackend]:
        backend = MemoryStorage()
        yield backend
        await backend.close()

    async def test_keeps_content_type(self, storage: StorageBackend) -> None:
        await storage.write("img", stream_parts([b"png"]), content_type="image/png")

        async with await storage.open("img") as stream:
            assert stream.content_type == "image/png"

    async def test_has_no_presigned_urls(self, storage: StorageBackend) -> None:
        await storage.write("img", stream_parts([b"png"]))

        assert await storage.presigned_url("img") is None


class TestLocalStorage(StorageContract):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[StorageBackend]:
        backend = LocalStorage(tmp_path / "assets")
        yield backend
        await backend.close()


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize("key", [*BAD_KEYS, f"{INCOMING_DIR}/x"])
async def test_local_rejects_traversal_and_writes_nothing(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "assets")

    with pytest.raises(InvalidKey):
        await storage.write(key, stream_parts([b"x"]))
    with pytest.raises(InvalidKey):
        storage.path_for(key)

    assert files_under(tmp_path) == []


async def test_local_object_lives_at_its_key_path(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    await storage.write("sha256/ab/cd/file.png", stream_parts([b"png bytes"]))

    assert (tmp_path / "sha256" / "ab" / "cd" / "file.png").read_bytes() == b"png bytes"
    assert storage.path_for("sha256/ab/cd/file.png") == tmp_path / "sha256/ab/cd/file.png"


async def test_local_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    async def failing() -> AsyncIterator[bytes]:
        yield random_bytes(3 * 1024 * 1024)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError):
        await storage.write("obj", failing())

    assert files_under(tmp_path) == []


async def test_local_completed_write_leaves_only_the_object(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    await storage.write("a/obj", stream_parts([b"1", b"2"]))
    await storage.check()

    assert files_under(tmp_path) == ["a/obj"]


async def test_local_directory_is_not_an_object(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.write("dir/obj", stream_parts([b"x"]))

    assert not await storage.exists("dir")
    await storage.delete("dir")
    assert await storage.exists("dir/obj")


async def test_local_check_fails_when_root_cannot_hold_files(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    storage = LocalStorage(blocker)

    with pytest.raises(StorageUnavailable) as raised:
        await storage.check()
    assert raised.value.status_code == 503


async def test_local_write_to_unwritable_root_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    storage = LocalStorage(blocker)

    with pytest.raises(StorageUnavailable):
        await storage.write("obj", stream_parts([b"x"]))


async def test_local_write_file_of_missing_source_is_not_an_outage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "assets")

    with pytest.raises(FileNotFoundError):
        await storage.write_file("obj", tmp_path / "does-not-exist")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count open files")
async def test_local_releases_file_when_stream_is_not_read(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.write("obj", stream_parts([b"data"]))
    open_before = len(os.listdir("/proc/self/fd"))

    # Streams kept alive, so only an explicit release (not garbage collection) closes them.
    streams = []
    for _ in range(20):
        async with await storage.open("obj") as stream:
            streams.append(stream)

    assert len(os.listdir("/proc/self/fd")) <= open_before + 1
    assert len(streams) == 20


def test_create_storage_follows_settings(tmp_path: Path) -> None:
    local = create_storage(Settings(storage="local", data_dir=tmp_path, _env_file=None))
    memory = create_storage(Settings(storage="memory", _env_file=None))
    s3 = create_storage(
        Settings(
            storage="s3",
            s3_bucket="assets",
            s3_prefix="/tenant/",
            s3_endpoint_url="http://127.0.0.1:9000",
            _env_file=None,
        )
    )

    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "assets").absolute()
    assert isinstance(memory, MemoryStorage)
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("assets", "tenant/", "http://127.0.0.1:9000")
    assert s3.object_key("a/b") == "tenant/a/b"
