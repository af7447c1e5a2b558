"""Gallery thumbnails: made once per content, kept in storage next to the files.

A thumbnail depends only on the bytes of its image, so it is cached under the image's
SHA-256 (``thumbnails/ab/<sha256>-320.webp``): every asset with the same bytes (an upload
sent twice, the same result in two jobs) shares one, every node of a cluster finds the one
another node made (the storage is shared), and a page view never writes to the database.
Two first views at once may both make it; the writes are atomic and equal, so either wins.
Access is checked on the asset before this module is asked (its caller owns that).

Decoding is CPU work and runs in a thread; the image is checked first (``check_image``:
format by content, pixel count before decoding), so a bomb is refused, not decoded.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

from PIL import Image, ImageOps

from conveyor.assets.models import Asset
from conveyor.content.images import ImageRejected, check_image
from conveyor.storage import ObjectStream, StorageBackend

THUMBNAIL_SIDE = 320
THUMBNAIL_MIME = "image/webp"
# Thumbnails are made only of images up to this size (a larger one shows its placeholder).
MAX_SOURCE_BYTES = 40 * 1024 * 1024


def thumbnail_key(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}-{THUMBNAIL_SIDE}.webp"


def make_thumbnail(data: bytes) -> bytes:
    """A WebP at most ``THUMBNAIL_SIDE`` pixels on its longer side (CPU: call off the loop)."""
    check_image(data)
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))
        picture = ImageOps.exif_transpose(image)
        picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        if picture.mode not in ("RGB", "RGBA"):
            picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
        out = io.BytesIO()
        picture.save(out, "WEBP", quality=80, method=4)
        return out.getvalue()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Thumbnails:
    def __init__(self, storage: StorageBackend) -> None:
        self.storage = storage

    async def open(self, asset: Asset) -> ObjectStream | None:
        """The asset's thumbnail, made now if it was never made; None if the asset is not
        an image this server can read (the page shows a placeholder instead)."""
        if not asset.mime_type.startswith("image/") or asset.size > MAX_SOURCE_BYTES:
            return None
        key = thumbnail_key(asset.sha256)
        if not await self.storage.exists(key):
            data = await self.storage.read_bytes(asset.storage_key)
            try:
                thumbnail = await asyncio.to_thread(make_thumbnail, data)
            except (ImageRejected, OSError, ValueError):
                return None
            await self.storage.write(key, _one(thumbnail), content_type=THUMBNAIL_MIME)
        return await self.storage.open(key)
