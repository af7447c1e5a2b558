"""check_image: real decoding, pixel limits before decoding, corrupt and foreign data."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, features

from conveyor.content.images import (
    CorruptImage,
    ImageInfo,
    ImageTooLarge,
    UnsupportedImageFormat,
    check_image,
)


def encoded(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "blue").save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR is rewritten to announce another size (CRC fixed)."""
    data = bytearray(encoded("PNG", (1, 1)))
    ihdr = 8 + 8  # signature, then length + type of the first chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize(
    ("fmt", "mode", "mime"),
    [
        ("PNG", "RGB", "image/png"),
        ("JPEG", "RGB", "image/jpeg"),
        ("WEBP", "RGB", "image/webp"),
        ("GIF", "P", "image/gif"),
        ("BMP", "RGB", "image/bmp"),
        ("TIFF", "RGB", "image/tiff"),
        pytest.param(
            "AVIF",
            "RGB",
            "image/avif",
            marks=pytest.mark.skipif(not features.check("avif"), reason="no AVIF in Pillow"),
        ),
    ],
)
def test_decodable_images_are_described(fmt: str, mode: str, mime: str) -> None:
    assert check_image(encoded(fmt, mode=mode)) == ImageInfo(mime=mime, width=64, height=48)


def test_a_one_pixel_image_passes_with_a_warning() -> None:
    info = check_image(encoded("PNG", (1, 1)))
    assert (info.width, info.height, info.pixels) == (1, 1, 1)
    assert info.warnings == ("image is only 1×1 pixels",)


def test_a_header_announcing_a_bomb_is_refused_before_decoding() -> None:
    bomb = png_claiming(100_000, 100_000)
    assert len(bomb) < 100
    with pytest.raises(ImageTooLarge) as caught:
        check_image(bomb)
    assert caught.value.message == (
        "image is 100000×100000 pixels, more than the limit of 50,000,000"
    )
    assert caught.value.status_code == 413


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_pillows_process_wide_limit_plays_no_part(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Other code in the process sets Image.MAX_IMAGE_PIXELS as it likes; the caller's
    # limit is the one that counts, in both directions.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert check_image(encoded(fmt)).pixels == 64 * 48
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**12)
    with pytest.raises(ImageTooLarge, match="more than the limit of 50,000,000"):
        check_image(png_claiming(12_000, 12_000))


def test_the_pixel_limit_is_the_callers() -> None:
    with pytest.raises(ImageTooLarge, match="64×48 pixels, more than the limit of 1,000"):
        check_image(encoded("PNG"), max_pixels=1000)
    assert check_image(encoded("PNG"), max_pixels=64 * 48).pixels == 64 * 48


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_truncated_images_are_corrupt(fmt: str) -> None:
    # Noise does not compress, so the cut lands inside pixel data.
    noisy = Image.frombytes("RGB", (256, 256), bytes(range(256)) * 768)
    buffer = io.BytesIO()
    noisy.convert("P" if fmt == "GIF" else "RGB").save(buffer, fmt)
    data = buffer.getvalue()
    with pytest.raises(CorruptImage):
        check_image(data[: len(data) // 2])


def test_a_png_with_a_broken_checksum_is_corrupt() -> None:
    data = bytearray(encoded("PNG"))
    data[-20] ^= 0xFF  # inside the IDAT chunk
    with pytest.raises(CorruptImage):
        check_image(bytes(data))


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b"<!DOCTYPE html><html>not found</html>", "text/html"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"just words", "text/plain"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "image/svg+xml",
        ),
    ],
)
def test_other_content_is_not_an_image(data: bytes, looks_like: str) -> None:
    with pytest.raises(UnsupportedImageFormat) as caught:
        check_image(data)
    assert caught.value.message == f"not an image (looks like {looks_like})"


def test_unrecognisable_bytes_are_not_an_image() -> None:
    with pytest.raises(UnsupportedImageFormat) as caught:
        check_image(bytes(range(256)))
    assert caught.value.message == "not an image"


def test_formats_can_be_narrowed() -> None:
    with pytest.raises(UnsupportedImageFormat, match="image/gif images are not accepted here"):
        check_image(encoded("GIF", mode="P"), formats={"image/png", "image/jpeg", "image/webp"})
    check_image(encoded("WEBP"), formats={"image/png", "image/jpeg", "image/webp"})


def test_heic_without_a_decoder_plugin_is_refused_clearly() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(UnsupportedImageFormat, match="image/heic images cannot be decoded"):
        check_image(heic)
