"""ZIP archives produced while they are sent, never assembled in memory or on disk.

``stream_zip`` drives the standard library's ``zipfile`` against a write-only sink with no
``tell``/``seek``; ``zipfile`` then writes each entry's sizes and CRC in a data descriptor
after the data instead of going back to patch the header, so every byte can leave as soon as
it is produced. Memory stays at about one source chunk. Entries are stored, not deflated,
by default: images and audio are already compressed, and deflating on the event loop would
stall it. An entry whose size is unknown is written as ZIP64, because ZIP64 must be chosen
before its header goes out and the entry might pass 4 GiB. Names are made safe to extract
(no absolute paths, no ``..``, no characters Windows refuses) and unique.
"""

from __future__ import annotations

import inspect
import posixpath
import re
import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from conveyor.storage.base import StorageError

ChunkSource = (
    AsyncIterable[bytes] | Callable[[], AsyncIterable[bytes] | Awaitable[AsyncIterable[bytes]]]
)

_EARLIEST_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_LATEST_ZIP_TIME = (2107, 12, 31, 23, 59, 58)
_UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
_FALLBACK_NAME = "file"


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One file of the archive.

    ``chunks`` is either the byte stream itself or a function that opens it (called only when
    the entry's turn comes, so a thousand entries do not hold a thousand open streams); the
    function may be async, e.g. ``lambda: storage.open(key)``.
    """

    name: str
    chunks: ChunkSource
    size: int | None = None
    modified: datetime | None = None


async def stream_zip(
    entries: AsyncIterable[ZipEntry] | Iterable[ZipEntry],
    *,
    compression: int = zipfile.ZIP_STORED,
) -> AsyncIterator[bytes]:
    """Yield a ZIP archive of ``entries`` piece by piece as the sources are read."""
    sink = _PendingOutput()
    names = _UniqueNames()
    with zipfile.ZipFile(sink, mode="w", compression=compression, allowZip64=True) as archive:
        async for entry in _as_async(entries):
            info = zipfile.ZipInfo(
                names.claim(safe_zip_name(entry.name)), _zip_time(entry.modified)
            )
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            if entry.size is not None:
                # zipfile picks ZIP64 from the announced size when it writes the header.
                info.file_size = entry.size
            source = await _open_source(entry.chunks)
            written = 0
            try:
                with archive.open(info, mode="w", force_zip64=entry.size is None) as member:
                    async for chunk in source:
                        member.write(chunk)
                        written += len(chunk)
                        if pending := sink.take():
                            yield pending
                    if entry.size is not None and written != entry.size:
                        raise StorageError(
                            f"zip entry {entry.name!r} announced {entry.size} bytes "
                            f"but its source gave {written}"
                        )
            finally:
                if source is not entry.chunks:
                    await _close_source(source)
            if pending := sink.take():
                yield pending
    if pending := sink.take():
        yield pending


def safe_zip_name(name: str) -> str:
    """A relative, extractable path: no drive, no root, no ``.``/``..``, no reserved characters."""
    segments: list[str] = []
    for raw in name.replace("\\", "/").split("/"):
        segment = _UNSAFE_CHARACTERS.sub("_", raw).strip()
        if segment in ("", ".", "..") or (not segments and _is_drive(raw)):
            continue
        # Windows drops trailing dots and spaces, which could merge two names on extraction.
        segment = segment.rstrip(". ")
        if segment:
            segments.append(segment)
    return "/".join(segments) or _FALLBACK_NAME


class _UniqueNames:
    """Hands out each name once, case-insensitively (as Windows and macOS compare them)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, name: str) -> str:
        directory, base = posixpath.split(name)
        stem, extension = posixpath.splitext(base)
        candidate = name
        counter = 1
        while candidate.casefold() in self._taken:
            counter += 1
            candidate = posixpath.join(directory, f"{stem} ({counter}){extension}")
        self._taken.add(candidate.casefold())
        return candidate


class _PendingOutput:
    """Write-only file object that collects what zipfile writes until it is yielded."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        # zipfile may pass a memoryview of the caller's buffer; keep a copy, not the view.
        self._pieces.append(bytes(data))
        return len(self._pieces[-1])

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        pieces, self._pieces = self._pieces, []
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _is_drive(segment: str) -> bool:
    return len(segment) == 2 and segment[1] == ":" and segment[0].isalpha()


def _zip_time(modified: datetime | None) -> tuple[int, int, int, int, int, int]:
    # ZIP has no time zone field; aware times are written as UTC, naive ones as given.
    if modified is None:
        return _EARLIEST_ZIP_TIME
    if modified.tzinfo is not None:
        modified = modified.astimezone(UTC).replace(tzinfo=None)
    stamp = (
        modified.year,
        modified.month,
        modified.day,
        modified.hour,
        modified.minute,
        modified.second,
    )
    return min(max(stamp, _EARLIEST_ZIP_TIME), _LATEST_ZIP_TIME)


async def _as_async(
    entries: AsyncIterable[ZipEntry] | Iterable[ZipEntry],
) -> AsyncIterator[ZipEntry]:
    if isinstance(entries, AsyncIterable):
        async for entry in entries:
            yield entry
    else:
        for entry in entries:
            yield entry


async def _open_source(chunks: ChunkSource) -> AsyncIterable[bytes]:
    if isinstance(chunks, AsyncIterable):
        return chunks
    opened = chunks()
    if inspect.isawaitable(opened):
        return await opened
    return opened


async def _close_source(source: AsyncIterable[bytes]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()
