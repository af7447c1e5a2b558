"""Inputs the engine tests draw themselves, and the two small ports the adapter needs.

Pictures are drawn with Pillow (a coloured product shape on a plain, slightly shaded
backdrop, a rendered text line) so every expectation is known exactly. ``MemoryAssetIO`` is
an in-memory ``AssetIO``; ``InlineCpuRunner`` runs an engine in the test's process and
``PoolCpuRunner`` in a real ``ProcessPoolExecutor``, one semaphore per limiter.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from conveyor.providers.base import FileInput, StoredFile

T = TypeVar("T")

PRODUCT_RED = (200, 30, 40)
PRODUCT_BLUE = (30, 70, 200)
BACKDROP = (236, 236, 231)


def encode(image: Image.Image, fmt: str = "PNG", **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def product_photo(
    shape: str = "ellipse",
    colour: tuple[int, int, int] = PRODUCT_RED,
    size: tuple[int, int] = (800, 600),
    label: str | None = None,
) -> tuple[Image.Image, np.ndarray[Any, np.dtype[np.bool_]]]:
    """A shaded product shape on a light, faintly graded backdrop, and its true mask."""
    width, height = size
    ramp = np.linspace(0.93, 1.0, width, dtype=np.float32)[None, :, None]
    backdrop = (np.full((height, width, 3), BACKDROP, np.float32) * ramp).astype(np.uint8)
    photo = Image.fromarray(backdrop)
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    box = (width * 0.3, height * 0.18, width * 0.7, height * 0.82)
    if shape == "ellipse":
        draw.ellipse(box, fill=255)
    else:
        draw.rounded_rectangle(box, radius=int(width * 0.04), fill=255)
    shade = np.linspace(0.85, 1.1, width, dtype=np.float32)[None, :, None]
    body = np.clip(np.full((height, width, 3), colour, np.float32) * shade, 0, 255).astype(np.uint8)
    photo.paste(Image.fromarray(body), mask=mask)
    if label:
        font = ImageFont.load_default(size=int(height * 0.08))
        ImageDraw.Draw(photo).text(
            (width * 0.5, height * 0.5), label, fill="white", font=font, anchor="mm"
        )
    return photo, np.asarray(mask) > 127


def text_line(text: str, size: tuple[int, int] = (720, 160), font: str | None = None) -> bytes:
    """Black text rendered on white, as a PNG (Pillow's own font unless ``font`` is given)."""
    image = Image.new("RGB", size, "white")
    face = (
        ImageFont.truetype(font, size[1] // 3)
        if font
        else ImageFont.load_default(size=size[1] // 3)
    )
    ImageDraw.Draw(image).text(
        (size[0] // 2, size[1] // 2), text, fill="black", font=face, anchor="mm"
    )
    return encode(image)


def iou(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def alpha_of(png: bytes) -> np.ndarray[Any, np.dtype[np.bool_]]:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGBA"
    return np.asarray(image.getchannel("A")) > 127


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims a huge image (the pixels are never there)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def linear_rgb_profile() -> bytes:
    """A minimal ICC v2 monitor profile: sRGB primaries with a linear (gamma 1.0) curve.

    Pillow can only create sRGB, Lab and XYZ profiles; this one makes a real conversion
    visible: mid-grey 128 in linear light is about 188 in sRGB.
    """

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    text = b"linear RGB test profile\0"
    description = (
        b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    )
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0100) + b"\0\0"
    tags = [
        (b"desc", description),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0public domain\0\0\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        padded = data + b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def _bad_product_images() -> dict[str, bytes]:
    photo = encode(product_photo(size=(400, 300))[0], "JPEG")
    return {
        "empty": b"",
        "not an image": b"this is not an image at all" * 10,
        "truncated jpeg": photo[: len(photo) // 3],
        "decompression bomb": png_bomb(),
        "one pixel": encode(Image.new("RGB", (1, 1), "red")),
    }


# Every image engine must turn each of these into a clear EngineInputError.
BAD_PRODUCT_IMAGES = _bad_product_images()


class MemoryAssetIO:
    """``AssetIO`` over a dict: inputs are put in by id, outputs kept with their MIME type."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.mime_types: dict[str, str] = {}

    def put(self, data: bytes, mime_type: str = "application/octet-stream") -> FileInput:
        asset_id = f"in-{len(self.blobs)}"
        self.blobs[asset_id] = data
        self.mime_types[asset_id] = mime_type
        return FileInput(asset_id=asset_id, mime_type=mime_type)

    async def read(self, file: FileInput, *, max_bytes: int | None = None) -> bytes:
        assert file.asset_id is not None
        data = self.blobs[file.asset_id]
        if max_bytes is not None and len(data) > max_bytes:
            raise ValueError("too large")
        return data

    async def url_for(self, file: FileInput) -> str:
        raise NotImplementedError

    async def store(
        self, data: bytes, *, mime_type: str | None = None, filename: str | None = None
    ) -> StoredFile:
        asset_id = f"out-{len(self.blobs)}"
        self.blobs[asset_id] = data
        self.mime_types[asset_id] = mime_type or "application/octet-stream"
        return StoredFile(
            asset_id, self.mime_types[asset_id], len(data), hashlib.sha256(data).hexdigest()
        )

    async def store_from_url(self, url: str) -> StoredFile:
        raise NotImplementedError


class InlineCpuRunner:
    """Runs the engine in this process (what the pool does, minus the pickling)."""

    def __init__(self) -> None:
        self.limiters: list[str] = []

    async def run(self, limiter: str, fn: Callable[..., T], /, *args: Any) -> T:
        self.limiters.append(limiter)
        return fn(*args)


class PoolCpuRunner:
    """Runs the engine in a real process pool, one semaphore per limiter."""

    def __init__(self, pool: ProcessPoolExecutor, concurrency: int = 2) -> None:
        self._pool = pool
        self._concurrency = concurrency
        self._limits: dict[str, asyncio.Semaphore] = {}

    async def run(self, limiter: str, fn: Callable[..., T], /, *args: Any) -> T:
        semaphore = self._limits.setdefault(limiter, asyncio.Semaphore(self._concurrency))
        async with semaphore:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
