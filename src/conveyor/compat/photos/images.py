"""The seed serves every image as PNG; Conveyor keeps each one as it was made or sent.

Cut-outs and finals are PNG already (the seed API asks for a PNG final); an original sent as
JPEG or WEBP is converted when it is asked for, never stored twice. ``PngImages`` serves a
stored image as PNG (streamed when it is one, converted in a thread when not) and streams a
batch's ZIP of them. ``as_png`` decodes the whole image: modes a PNG cannot hold (CMYK
JPEGs, for one) become RGB, transparency is kept, and EXIF orientation is applied, as a
browser shows the photo.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from PIL import Image, ImageOps

from conveyor.assets.models import Asset
from conveyor.assets.service import AssetService
from conveyor.storage import ZipEntry, stream_zip

PNG = "image/png"
# Fast over small: a 12 MP original is converted in about a second, not five.
_COMPRESS_LEVEL = 1


def as_png(data: bytes) -> bytes:
    """``data`` (an image Pillow can read) as a PNG."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=_COMPRESS_LEVEL)
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class ImageBody:
    """A PNG to send: its bytes as they are read, and its length."""

    chunks: AsyncIterator[bytes]
    size: int


class PngImages:
    """Stored images, served as PNG."""

    def __init__(self, assets: AssetService) -> None:
        self.assets = assets

    async def body(self, asset: Asset) -> ImageBody:
        """The image as PNG: a stored PNG streamed (opened now, so a missing file fails
        before the answer starts), anything else converted."""
        if asset.mime_type == PNG:
            stream = await self.assets.open(asset)

            async def chunks() -> AsyncIterator[bytes]:
                async with stream:
                    async for chunk in stream:
                        yield chunk

            return ImageBody(chunks(), asset.size)
        converted = await self._converted(asset)
        return ImageBody(_once(converted), len(converted))

    def archive(self, files: Iterable[tuple[str, Asset]]) -> AsyncIterator[bytes]:
        """A ZIP of ``files`` (name, asset), each as PNG, streamed as it is read."""
        return stream_zip(
            ZipEntry(
                name,
                lambda asset=asset: self._chunks(asset),  # type: ignore[misc]
                size=asset.size if asset.mime_type == PNG else None,
                modified=asset.created_at,
            )
            for name, asset in files
        )

    async def _chunks(self, asset: Asset) -> AsyncIterator[bytes]:
        if asset.mime_type == PNG:
            async for chunk in self.assets.stream(asset):
                yield chunk
        else:
            yield await self._converted(asset)

    async def _converted(self, asset: Asset) -> bytes:
        return await asyncio.to_thread(as_png, await self.assets.read_bytes(asset))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
