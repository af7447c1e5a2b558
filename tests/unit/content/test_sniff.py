"""sniff_mime on files produced by real encoders (Pillow, wave, zipfile, ffmpeg when present)
and on hand-built headers for the formats nothing here can write."""

from __future__ import annotations

import io
import json
import subprocess
import wave
import zipfile
from pathlib import Path

import pytest
from PIL import Image, features

from conveyor.content.sniff import (
    IMAGE_MIMES,
    SNIFF_BYTES,
    extension_for,
    is_image_mime,
    sniff_mime,
)
from tests.support.programs import requires_program


def pillow_file(fmt: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (16, 12), "red").save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "mime"),
    [
        ("PNG", "RGB", "image/png"),
        ("JPEG", "RGB", "image/jpeg"),
        ("WEBP", "RGB", "image/webp"),
        ("GIF", "P", "image/gif"),
        ("BMP", "RGB", "image/bmp"),
        ("TIFF", "RGB", "image/tiff"),
        ("PDF", "RGB", "application/pdf"),
        pytest.param(
            "AVIF",
            "RGB",
            "image/avif",
            marks=pytest.mark.skipif(not features.check("avif"), reason="no AVIF in Pillow"),
        ),
    ],
)
def test_images_written_by_pillow(fmt: str, mode: str, mime: str) -> None:
    data = pillow_file(fmt, mode)
    assert sniff_mime(data[:SNIFF_BYTES]) == mime
    assert is_image_mime(mime) == (mime in IMAGE_MIMES)


def test_big_endian_tiff_and_old_gif() -> None:
    assert sniff_mime(b"MM\x00*\x00\x00\x00\x08") == "image/tiff"
    assert sniff_mime(b"GIF87a\x10\x00\x10\x00") == "image/gif"


def test_wav_written_by_the_wave_module() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(1600))
    assert sniff_mime(buffer.getvalue()) == "audio/wav"


def test_zip_written_by_zipfile() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "hello")
    assert sniff_mime(buffer.getvalue()) == "application/zip"
    assert sniff_mime(b"PK\x05\x06" + bytes(18)) == "application/zip"  # an empty archive


# ffmpeg writes real audio and video; without it the hand-built headers below still run.
FFMPEG_FILES = [
    ("a.mp3", ["-f", "lavfi", "-i", "sine=d=0.1"], "audio/mpeg"),
    (
        "b.mp3",
        ["-f", "lavfi", "-i", "sine=d=0.1", "-id3v2_version", "0", "-write_xing", "0"],
        "audio/mpeg",
    ),
    ("a.ogg", ["-f", "lavfi", "-i", "sine=d=0.1", "-c:a", "libvorbis"], "audio/ogg"),
    ("a.opus", ["-f", "lavfi", "-i", "sine=d=0.1", "-c:a", "libopus"], "audio/ogg"),
    ("a.flac", ["-f", "lavfi", "-i", "sine=d=0.1"], "audio/flac"),
    ("a.m4a", ["-f", "lavfi", "-i", "sine=d=0.1"], "audio/mp4"),
    ("a.aac", ["-f", "lavfi", "-i", "sine=d=0.1"], "audio/aac"),
    ("a.wav", ["-f", "lavfi", "-i", "sine=d=0.1"], "audio/wav"),
    ("v.mp4", ["-f", "lavfi", "-i", "color=c=red:s=32x32:d=0.1"], "video/mp4"),
    ("v.mov", ["-f", "lavfi", "-i", "color=c=red:s=32x32:d=0.1"], "video/quicktime"),
    ("v.webm", ["-f", "lavfi", "-i", "color=c=red:s=32x32:d=0.1"], "video/webm"),
    ("v.mkv", ["-f", "lavfi", "-i", "color=c=red:s=32x32:d=0.1"], "video/x-matroska"),
    ("v.ogv", ["-f", "lavfi", "-i", "color=c=red:s=32x32:d=0.1", "-c:v", "libtheora"], "video/ogg"),
]


@requires_program("ffmpeg")
@pytest.mark.parametrize(("name", "args", "mime"), FFMPEG_FILES, ids=[f[0] for f in FFMPEG_FILES])
def test_media_written_by_ffmpeg(tmp_path: Path, name: str, args: list[str], mime: str) -> None:
    target = tmp_path / name
    command = ["ffmpeg", "-loglevel", "error", "-y", *args, str(target)]
    result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        pytest.skip(f"this ffmpeg cannot write {name}: {result.stderr.decode()[-200:]}")
    assert sniff_mime(target.read_bytes()[:SNIFF_BYTES]) == mime


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (ftyp(b"avif", b"mif1", b"miaf"), "image/avif"),
        (ftyp(b"mif1", b"avif", b"miaf"), "image/avif"),  # AVIF named only as compatible
        (ftyp(b"heic", b"mif1"), "image/heic"),
        (ftyp(b"mif1", b"heic"), "image/heic"),
        (ftyp(b"mif1", b"miaf"), "image/heif"),
        (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
        (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
        (ftyp(b"M4A ", b"isom"), "audio/mp4"),
        (ftyp(b"3gp4", b"isom"), "video/3gpp"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE", "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + bytes(60), "audio/mpeg"),  # MPEG-1 layer III frame
        (b"\xff\xf3\x48\xc4" + bytes(60), "audio/mpeg"),  # MPEG-2 layer III frame
        (b"\xff\xf1\x50\x40\x21\x3f\xfc", "audio/aac"),  # ADTS
        (b"fLaC\x00\x00\x00\x22", "audio/flac"),
        (b"OggS\x00\x02" + bytes(22) + b"\x01\x1e\x01vorbis", "audio/ogg"),
        (b"OggS\x00\x02" + bytes(22) + b"\x01*\x80theora", "video/ogg"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "application/pdf"),
        (b"\x1f\x8b\x08\x00", "application/gzip"),
    ],
)
def test_hand_built_headers(head: bytes, mime: str) -> None:
    assert sniff_mime(head) == mime


@pytest.mark.parametrize(
    ("text", "mime"),
    [
        (json.dumps({"error": "not found"}).encode(), "application/json"),
        (b"\xef\xbb\xbf  [1, 2, 3]", "application/json"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "text/html"),
        (b"\n  <html lang=en>", "text/html"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
        (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "application/xml"),
        (b"Access denied", "text/plain"),
        (b"BM is how this sentence starts, not a bitmap", "text/plain"),
        ("Повреждение бампера".encode()[:-1], "text/plain"),  # cut inside a character
    ],
)
def test_text_is_the_last_resort(text: bytes, mime: str) -> None:
    assert sniff_mime(text) == mime


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x00\x01\x02\x03binary",
        b"\xff\xd8",
        b"\xff\xfe\x00\x00",
        bytes(range(256)),
        b"\xff\xe2\xf0\x00",
    ],
)
def test_unknown_bytes_are_none(head: bytes) -> None:
    assert sniff_mime(head) is None


def test_names_and_claims_play_no_part() -> None:
    jpeg = pillow_file("JPEG")
    # The same bytes, whatever a client calls them, are JPEG; a PNG signature that is not
    # at the start makes nothing a PNG.
    assert sniff_mime(jpeg) == "image/jpeg"
    assert sniff_mime(b"not a png \x89PNG\r\n\x1a\n") is None


@pytest.mark.parametrize(
    ("mime", "extension"),
    [
        ("image/jpeg", ".jpg"),
        ("image/png", ".png"),
        ("IMAGE/PNG; charset=binary", ".png"),
        ("audio/mpeg", ".mp3"),
        ("video/quicktime", ".mov"),
        ("application/x-unknown", ".bin"),
        ("", ".bin"),
    ],
)
def test_extension_for(mime: str, extension: str) -> None:
    assert extension_for(mime) == extension


def test_every_sniffable_image_type_has_an_extension() -> None:
    assert all(extension_for(mime) != ".bin" for mime in IMAGE_MIMES)
