"""A storage backend in a local directory: the single-machine default (``./data/assets``).

An object with key ``a/b/c.png`` is the file ``<root>/a/b/c.png``. A write streams into a
temporary file under ``<root>/.incoming`` (same filesystem, so the final ``os.replace`` is
atomic), flushes it to disk and only then renames it into place: readers see the old
object or the new one, never a torn file, and a crash leaves at most an orphan in
``.incoming``. All file I/O runs in worker threads so the event loop never waits on a disk.
The content type is not kept; the asset rows hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from conveyor.storage.base import (
    DEFAULT_CHUNK_SIZE,
    InvalidKey,
    ObjectNotFound,
    ObjectStream,
    StorageBackend,
    StorageUnavailable,
)
from conveyor.storage.keys import check_key

INCOMING_DIR = ".incoming"

# Chunks from uploads are often small; batching them saves one thread hop per chunk.
_WRITE_BATCH_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class _TempFile:
    """A file being written in ``.incoming``, renamed into place once complete."""

    handle: BinaryIO
    path: Path

    def discard(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


class LocalStorage(StorageBackend):
    """Objects as files under one root directory."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self._incoming = self.root / INCOMING_DIR
        # fsync makes a committed object survive a power cut; tests may turn it off for speed.
        self._fsync = fsync
        self._incoming_ready = False

    def path_for(self, key: str) -> Path:
        """The file that holds ``key``; raises ``InvalidKey`` for keys outside the store."""
        check_key(key)
        if key.split("/", 1)[0] == INCOMING_DIR:
            raise InvalidKey(f"storage key {key!r} uses the reserved {INCOMING_DIR!r} directory")
        return self.root.joinpath(*key.split("/"))

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        target = self.path_for(key)
        # Most objects are small: gather the first batch before touching the disk, and if the
        # stream ends within it, write and commit the whole object in one thread hop.
        iterator = aiter(chunks)
        head: list[bytes] = []
        head_size = 0
        ended = False
        while head_size < _WRITE_BATCH_BYTES:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                ended = True
                break
            head.append(chunk)
            head_size += len(chunk)
        if ended:
            with _unavailable_on_os_error(key):
                await asyncio.to_thread(self._write_whole, head, target)
            return head_size
        with _unavailable_on_os_error(key):
            temp = await asyncio.to_thread(self._open_temp)
        written = 0
        try:
            batch: list[bytes] = head
            batch_size = head_size
            async for chunk in iterator:
                batch.append(chunk)
                batch_size += len(chunk)
                if batch_size >= _WRITE_BATCH_BYTES:
                    with _unavailable_on_os_error(key):
                        await asyncio.to_thread(temp.handle.writelines, batch)
                    written += batch_size
                    batch, batch_size = [], 0
            with _unavailable_on_os_error(key):
                await asyncio.to_thread(temp.handle.writelines, batch)
                written += batch_size
                await asyncio.to_thread(self._commit, temp, target)
        except BaseException:
            # Synchronous on purpose: this also runs on cancellation, where awaiting is
            # unreliable, and closing plus unlinking one file is quick.
            temp.discard()
            raise
        return written

    async def write_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        target = self.path_for(key)

        def copy_and_commit() -> None:
            temp = self._open_temp()
            try:
                with path.open("rb") as source:
                    shutil.copyfileobj(source, temp.handle, _WRITE_BATCH_BYTES)
                self._commit(temp, target)
            except BaseException:
                temp.discard()
                raise

        with _unavailable_on_os_error(key, source=path):
            await asyncio.to_thread(copy_and_commit)

    async def open(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        path = self.path_for(key)

        def open_regular_file() -> tuple[BinaryIO, int]:
            handle = path.open("rb")
            size = os.fstat(handle.fileno()).st_size
            return handle, size

        try:
            handle, size = await asyncio.to_thread(open_regular_file)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key!r}: {exc}") from exc

        async def release() -> None:
            handle.close()

        return ObjectStream(_read_chunks(handle, chunk_size), size=size, release=release)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def size(self, key: str) -> int:
        path = self.path_for(key)
        try:
            status = await asyncio.to_thread(path.stat)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        if not stat.S_ISREG(status.st_mode):
            raise ObjectNotFound(key)
        return status.st_size

    async def delete(self, key: str) -> None:
        path = self.path_for(key)

        def unlink() -> None:
            # Empty fan-out directories are left behind: removing them would race with a
            # concurrent write creating a file in them.
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                path.unlink()

        with _unavailable_on_os_error(key):
            await asyncio.to_thread(unlink)

    async def check(self) -> None:
        def write_probe() -> None:
            self._open_temp().discard()

        try:
            await asyncio.to_thread(write_probe)
        except OSError as exc:
            raise StorageUnavailable(
                f"local storage at {self.root} is not writable: {exc}"
            ) from exc

    def _write_whole(self, parts: list[bytes], target: Path) -> None:
        temp = self._open_temp()
        try:
            temp.handle.writelines(parts)
            self._commit(temp, target)
        except BaseException:
            temp.discard()
            raise

    def _open_temp(self) -> _TempFile:
        if not self._incoming_ready:
            self._incoming.mkdir(parents=True, exist_ok=True)
            self._incoming_ready = True
        try:
            fd, name = tempfile.mkstemp(dir=self._incoming, suffix=".part")
        except FileNotFoundError:
            # Someone removed the directory since: make it again, once.
            self._incoming.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._incoming, suffix=".part")
        return _TempFile(os.fdopen(fd, "wb"), Path(name))

    def _commit(self, temp: _TempFile, target: Path) -> None:
        temp.handle.flush()
        if self._fsync:
            os.fsync(temp.handle.fileno())
        temp.handle.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp.path, target)
        if self._fsync:
            # The rename itself is only durable once the directory entry is on disk.
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


async def _read_chunks(handle: BinaryIO, chunk_size: int) -> AsyncGenerator[bytes, None]:
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        handle.close()


@contextlib.contextmanager
def _unavailable_on_os_error(key: str, *, source: Path | None = None) -> Iterator[None]:
    """Disk full, read-only or permission errors: the store cannot take writes right now."""
    try:
        yield
    except FileNotFoundError as exc:
        # A vanished source file is the caller's mistake, not an outage.
        if source is not None and exc.filename == str(source):
            raise
        raise StorageUnavailable(f"cannot write {key!r}: {exc}") from exc
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {key!r}: {exc}") from exc
