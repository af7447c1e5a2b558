"""What seed 004 accepts as a photo: PNG, JPEG or WEBP by content, at most 10 MB, decodable.

The file's name and its ``Content-Type`` are claims; the bytes decide. ``check_upload``
refuses, in this order and with the seed's error body:

* more than ``MAX_FILE_BYTES`` → 413 / 4003 ``FILE_TOO_LARGE`` (``check_size`` says the
  same from a declared size, before the body is read);
* content that is no image, or an image of another format (GIF, BMP, TIFF, HEIC, SVG...)
  whatever its name → 400 / 4001 ``INVALID_FILE_FORMAT``;
* a header claiming more than ``MAX_PIXELS`` pixels — a decompression bomb, refused before
  any pixel is decoded → 413 / 4003 ``FILE_TOO_LARGE`` (too large in pixels, not bytes);
* a PNG/JPEG/WEBP that does not decode to its end (truncated, corrupt) → 400 / 4002
  ``FILE_CORRUPTED``.

Decoding is CPU work: call ``check_upload`` from a thread, never on the event loop. It
writes nothing, so a refused upload leaves nothing behind. ``read_at_most`` reads a form's
file and stops with 4003 as soon as it passes the limit.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from conveyor.compat.photos.errors import FileCorrupted, FileTooLarge, InvalidFileFormat
from conveyor.content.images import (
    CorruptImage,
    ImageTooLarge,
    UnsupportedImageFormat,
    check_image,
)

MAX_FILE_BYTES = 10 * 1024 * 1024
# 50 MP: above any camera photo that fits in 10 MB, far below a bomb's claim.
MAX_PIXELS = 50_000_000
ACCEPTED_MIME_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_FILENAME = 200
# Messages start with the seed's Russian wording; the English detail follows.
NOT_SUPPORTED = "Поддерживаются только PNG, JPEG, WEBP"
TOO_LARGE = "Файл слишком большой"
CORRUPTED = "Файл поврежден"
_UNSAFE_IN_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class CheckedUpload:
    mime_type: str
    width: int
    height: int
    size: int


def check_size(size: int) -> None:
    """Refuse a file (by its declared or counted size) over ``MAX_FILE_BYTES``."""
    if size > MAX_FILE_BYTES:
        raise FileTooLarge(
            f"{TOO_LARGE}: {size:,} bytes; the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB"
        )


class UploadedFile(Protocol):
    """A file of a multipart form (Starlette's ``UploadFile``)."""

    @property
    def filename(self) -> str | None: ...

    async def read(self, size: int = -1) -> bytes: ...

    async def seek(self, offset: int) -> None: ...


async def read_at_most(upload: UploadedFile, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, refused (4003) as soon as it is over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise FileTooLarge(
                f"{TOO_LARGE}: more than {limit // (1024 * 1024)} MB (the limit per photo)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def check_upload(data: bytes, *, max_pixels: int = MAX_PIXELS) -> CheckedUpload:
    """Describe an acceptable photo, or raise the seed's error (see the module docstring)."""
    check_size(len(data))
    if not data:
        raise InvalidFileFormat(f"{NOT_SUPPORTED}: the file is empty")
    try:
        info = check_image(data, max_pixels, formats=ACCEPTED_MIME_TYPES)
    except UnsupportedImageFormat as exc:
        raise InvalidFileFormat(f"{NOT_SUPPORTED}: {exc.message}") from exc
    except ImageTooLarge as exc:
        raise FileTooLarge(f"{TOO_LARGE}: {exc.message}") from exc
    except CorruptImage as exc:
        raise FileCorrupted(f"{CORRUPTED}: {exc.message}") from exc
    return CheckedUpload(info.mime, info.width, info.height, len(data))


def safe_filename(name: str | None) -> str | None:
    """The last path component of a client's file name, without control characters, at
    most ``MAX_FILENAME`` characters; ``None`` when nothing usable is left."""
    if not name:
        return None
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    cleaned = _UNSAFE_IN_NAME.sub("", base).strip().strip(".")
    return cleaned[:MAX_FILENAME] or None
