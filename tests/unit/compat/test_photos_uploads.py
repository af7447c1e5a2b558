"""Seed 004's upload rules: the bytes decide the format, and every refusal has the seed's body."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from conveyor.compat.photos.errors import (
    DatabaseUnavailable,
    FileCorrupted,
    FileTooLarge,
    InvalidFileFormat,
    PhotoApiError,
    seed_code_of,
    seed_error_body,
)
from conveyor.compat.photos.uploads import (
    MAX_FILE_BYTES,
    check_size,
    check_upload,
    safe_filename,
)
from conveyor.errors import ConveyorError, NotFound, ServiceUnavailable, ValidationFailed


def encoded(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red" if mode != "1" else 1).save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_png_jpeg_and_webp_are_accepted_by_content(fmt: str, mime: str) -> None:
    data = encoded(fmt)
    checked = check_upload(data)
    assert (checked.mime_type, checked.width, checked.height, checked.size) == (
        mime,
        40,
        30,
        len(data),
    )


@pytest.mark.parametrize(
    "data",
    [
        encoded("GIF"),
        encoded("BMP"),
        encoded("TIFF"),
        b"<html><body>a product page</body></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg"></svg>',
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"",
    ],
    ids=["gif", "bmp", "tiff", "html", "svg", "pdf", "empty"],
)
def test_anything_else_is_an_invalid_format_whatever_its_name(data: bytes) -> None:
    with pytest.raises(InvalidFileFormat) as refused:
        check_upload(data)
    assert refused.value.status_code == 400
    body = seed_error_body(refused.value)
    assert (body["error"], body["code"]) == ("INVALID_FILE_FORMAT", 4001)
    assert body["message"].startswith("Поддерживаются только PNG, JPEG, WEBP")


def test_a_truncated_or_garbled_image_is_corrupt() -> None:
    for data in (encoded("PNG", (200, 200))[:120], encoded("JPEG")[:40] + b"\x00" * 200):
        with pytest.raises(FileCorrupted) as refused:
            check_upload(data)
        assert refused.value.status_code == 400
        assert seed_error_body(refused.value)["code"] == 4002


def test_too_many_bytes_or_too_many_pixels_is_too_large() -> None:
    with pytest.raises(FileTooLarge) as too_big:
        check_upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_FILE_BYTES)
    assert too_big.value.status_code == 413
    assert seed_error_body(too_big.value) == {
        "error": "FILE_TOO_LARGE",
        "message": f"Файл слишком большой: {MAX_FILE_BYTES + 8:,} bytes; the limit is 10 MB",
        "code": 4003,
    }
    check_size(MAX_FILE_BYTES)  # exactly at the limit is fine
    with pytest.raises(FileTooLarge):
        check_size(MAX_FILE_BYTES + 1)

    bomb = png_claiming(100_000, 100_000)
    assert len(bomb) < 200
    with pytest.raises(FileTooLarge) as refused:
        check_upload(bomb)
    assert refused.value.status_code == 413
    assert "100000×100000" in refused.value.message


def test_every_error_renders_in_the_seed_shape_with_the_seed_number() -> None:
    cases: list[tuple[ConveyorError, int]] = [
        (InvalidFileFormat("x"), 4001),
        (DatabaseUnavailable("x"), 5003),
        (NotFound("job x not found"), 4004),
        (ValidationFailed("bad field"), 4000),
        (ServiceUnavailable("down"), 5000),
        (ConveyorError("??", status_code=418), 4000),
    ]
    for error, number in cases:
        assert seed_code_of(error) == number
        assert set(seed_error_body(error)) == {"error", "message", "code"}
    assert isinstance(DatabaseUnavailable("x"), PhotoApiError)
    assert DatabaseUnavailable("x").status_code == 503


def test_file_names_lose_paths_and_control_characters() -> None:
    assert safe_filename("C:\\photos\\товар 1.jpg") == "товар 1.jpg"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("a\x00b\nc.png") == "abc.png"
    assert safe_filename("..") is None
    assert safe_filename("") is None
    assert safe_filename(None) is None
    assert len(safe_filename("x" * 500 + ".png") or "") == 200
