"""Originals are served as PNG: every accepted format and mode converts, alpha is kept and
the photo is turned as its EXIF orientation says."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from conveyor.compat.photos.images import as_png


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


@pytest.mark.parametrize(
    ("mode", "fmt", "expected"),
    [
        ("RGB", "JPEG", "RGB"),
        ("L", "JPEG", "L"),
        ("CMYK", "JPEG", "RGB"),
        ("RGBA", "WEBP", "RGBA"),
        ("RGB", "WEBP", "RGB"),
    ],
)
def test_every_accepted_original_becomes_a_png(mode: str, fmt: str, expected: str) -> None:
    colours: dict[str, object] = {"L": 120, "CMYK": (0, 200, 200, 0), "RGBA": (200, 30, 30, 128)}
    colour = colours.get(mode, (200, 30, 30))
    png = decoded(as_png(encoded(Image.new(mode, (40, 30), colour), fmt)))
    assert (png.mode, png.size) == (expected, (40, 30))
    if expected == "RGBA":
        assert abs(png.getpixel((5, 5))[3] - 128) <= 2  # alpha kept


def test_the_exif_orientation_is_applied() -> None:
    photo = Image.new("RGB", (60, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show
    png = decoded(as_png(encoded(photo, "JPEG", exif=exif)))
    assert png.size == (20, 60)
