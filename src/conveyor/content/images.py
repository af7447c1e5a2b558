"""Is this really an image we can use? Decode it and find out.

``check_image`` trusts nothing but the bytes: the format is sniffed, only that format's
Pillow decoder is used, the pixel count is read from the header and refused *before* any
pixel is decoded (a 100-byte PNG can claim 100 000 × 100 000 pixels), then the file is
verified and fully loaded so truncated or corrupt data fails here rather than in a
provider call that costs money. The pixel limit is the caller's, never Pillow's global.
Very small images (a 1×1 tracking pixel is a common placeholder) pass with a warning.

It is CPU work: call it from a thread or a worker process, never on the event loop.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Collection
from dataclasses import dataclass

from PIL import Image, ImageFile

from conveyor.content.sniff import IMAGE_MIMES, SNIFF_BYTES, sniff_mime
from conveyor.errors import ConveyorError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "TINY_IMAGE_SIDE",
    "CorruptImage",
    "ImageInfo",
    "ImageRejected",
    "ImageTooLarge",
    "UnsupportedImageFormat",
    "check_image",
]

# 50 megapixels: more than any camera photo a client sends, far less than a bomb.
DEFAULT_MAX_PIXELS = 50_000_000
# The setting of the pixel limit recipes check inputs against (the engines' own limit).
PIXEL_LIMIT_SETTING = "CONVEYOR_ENGINE_MAX_IMAGE_PIXELS"
# Below this many pixels on a side a picture shows nothing a model could describe.
TINY_IMAGE_SIDE = 16

# Pillow's decoder for each sniffed type. HEIC/HEIF decode only where a plugin such as
# pillow-heif has registered "HEIF"; elsewhere they are refused as undecodable.
_PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/avif": "AVIF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}
# What Pillow's decoders raise on bad data (the same set Image.open catches, plus I/O).
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)


class ImageRejected(ConveyorError):
    """An upload or download that is not an image Conveyor can use."""

    status_code = 400
    code = "INVALID_IMAGE"


class UnsupportedImageFormat(ImageRejected):
    status_code = 415
    code = "UNSUPPORTED_IMAGE_FORMAT"


class CorruptImage(ImageRejected):
    code = "CORRUPT_IMAGE"


class ImageTooLarge(ImageRejected):
    """Too many pixels: a decompression bomb or simply a picture far bigger than useful."""

    status_code = 413
    code = "IMAGE_TOO_LARGE"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    mime: str
    width: int
    height: int
    warnings: tuple[str, ...] = ()

    @property
    def pixels(self) -> int:
        return self.width * self.height


def check_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    formats: Collection[str] | None = None,
    limit_setting: str | None = None,
) -> ImageInfo:
    """Decode ``data`` fully and describe it; raise ``ImageRejected`` subclasses otherwise.

    ``formats`` narrows the accepted MIME types (default: every raster type in
    ``IMAGE_MIMES`` that this Pillow build can decode).
    """
    allowed = IMAGE_MIMES if formats is None else frozenset(formats)
    sniffed = sniff_mime(data[:SNIFF_BYTES])
    if sniffed is None or sniffed not in IMAGE_MIMES:
        found = f" (looks like {sniffed})" if sniffed else ""
        raise UnsupportedImageFormat(f"not an image{found}")
    if sniffed not in allowed:
        raise UnsupportedImageFormat(
            f"{sniffed} images are not accepted here; use {', '.join(sorted(allowed))}"
        )

    width, height = _header_size(data, sniffed)
    if width <= 0 or height <= 0:
        raise CorruptImage("image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}×{height} pixels, more than the limit of {max_pixels:,}"
            + (f" (set by {limit_setting})" if limit_setting else "")
        )
    _decode(data, sniffed)

    notes: tuple[str, ...] = ()
    if width < TINY_IMAGE_SIDE or height < TINY_IMAGE_SIDE:
        notes = (f"image is only {width}×{height} pixels",)
    return ImageInfo(mime=sniffed, width=width, height=height, warnings=notes)


def _open(data: bytes, mime: str) -> ImageFile.ImageFile:
    """Open ``data`` with the one decoder its sniffed type names; reads the header only.

    ``Image.open`` would try every registered decoder and apply Pillow's process-wide
    ``MAX_IMAGE_PIXELS``, which other code in the process may change at any moment; going
    to the format's plugin keeps the decoders few and the pixel limit the caller's.
    """
    Image.init()
    entry = Image.OPEN.get(_PILLOW_FORMATS.get(mime, ""))
    if entry is None:
        raise UnsupportedImageFormat(f"{mime} images cannot be decoded by this server")
    factory, _accept = entry
    return factory(io.BytesIO(data), "")


def _header_size(data: bytes, mime: str) -> tuple[int, int]:
    try:
        with _open(data, mime) as image:
            return image.size
    except ImageRejected:
        raise
    except _DECODER_ERRORS as exc:
        raise CorruptImage(f"corrupt {mime} image: {exc}") from exc


def _decode(data: bytes, mime: str) -> None:
    # verify() checks structure and checksums but leaves the image unusable, so the pixels
    # are loaded from a second, fresh open. Only the first frame of an animation is
    # decoded, which is also all a model would look at.
    try:
        with _open(data, mime) as image:
            image.verify()
        with _open(data, mime) as image:
            image.load()
    except Image.DecompressionBombError as exc:
        # Some decoders (GIF frames) still consult Pillow's global limit internally.
        raise ImageTooLarge("image has more pixels than the decoder allows") from exc
    except _DECODER_ERRORS as exc:
        raise CorruptImage(f"corrupt {mime} image: {exc}") from exc
