"""What a file really is, judged from its first bytes.

Names, extensions and ``Content-Type`` headers are claims made by whoever sent the file;
magic numbers are what decoders actually look at. ``sniff_mime`` checks the well-known
signatures of the images, audio, video and documents Conveyor handles, in order of how
specific they are, and falls back to JSON or plain text only when the head decodes as
UTF-8 without control characters. ``SNIFF_BYTES`` is how much of a file is enough.
"""

from __future__ import annotations

import codecs
import re

__all__ = [
    "IMAGE_MIMES",
    "SNIFF_BYTES",
    "extension_for",
    "is_image_mime",
    "sniff_mime",
]

# Enough for every signature below, including the ISO-BMFF compatible-brand list and the
# Matroska DocType, and for a fair guess at text.
SNIFF_BYTES = 512

# Raster formats a vision model or Pillow can take. SVG is deliberately absent: it is a
# document that can carry scripts, not pixels.
IMAGE_MIMES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/gif",
        "image/avif",
        "image/heic",
        "image/heif",
        "image/bmp",
        "image/tiff",
    }
)

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "image/svg+xml": ".svg",
    "audio/wav": ".wav",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/aac": ".aac",
    "audio/flac": ".flac",
    "audio/mp4": ".m4a",
    "video/ogg": ".ogv",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/3gpp": ".3gp",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/gzip": ".gz",
    "application/json": ".json",
    "application/xml": ".xml",
    "text/html": ".html",
    "text/plain": ".txt",
    "application/octet-stream": ".bin",
}

# ISO base media file format (MP4 family): the major brand at offset 8 names the flavour;
# compatible brands follow the minor version. Image brands are checked before video ones
# because an AVIF file also lists generic brands such as "mif1" and "miaf".
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_QUICKTIME_BRANDS = {b"qt  "}
_AUDIO_MP4_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_3GPP_PREFIX = b"3g"

# BITMAPINFOHEADER sizes: "BM" alone is too common at the start of text to trust.
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}

_TEXT_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_HTML_START = re.compile(rb"<(?:!doctype\s+html|html|head|body|!--)", re.IGNORECASE)
_SVG_START = re.compile(rb"<svg[\s>]", re.IGNORECASE)


def sniff_mime(head: bytes) -> str | None:
    """The MIME type the first bytes of a file show, or ``None`` when they show nothing known."""
    if not head:
        return None
    return _binary_mime(head) or _text_mime(head)


def extension_for(mime: str) -> str:
    """File extension (with the dot) for a MIME type; ``.bin`` for anything unknown."""
    base = mime.split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(base, ".bin")


def is_image_mime(mime: str | None) -> bool:
    """Whether ``mime`` is a raster image type Conveyor accepts as a picture."""
    return mime in IMAGE_MIMES


def _binary_mime(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(
            head[8:12]
        )
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _iso_bmff_mime(head)
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "image/bmp"
    if head.startswith(b"OggS"):
        # The first page carries the codec header: Theora means video, the rest is audio.
        return "video/ogg" if b"\x80theora" in head[:SNIFF_BYTES] else "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:SNIFF_BYTES] else "video/x-matroska"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "application/zip"
    if head.startswith(b"\x1f\x8b\x08"):
        return "application/gzip"
    return _mpeg_audio_mime(head)


def _iso_bmff_mime(head: bytes) -> str:
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    # Compatible brands run from offset 16 to the end of the ftyp box, 4 bytes each.
    end = min(box_size if box_size >= 16 else 16, len(head))
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "image/avif"
    if brands & _HEIC_BRANDS:
        return "image/heic"
    if major in _HEIF_BRANDS:
        return "image/heif"
    if major in _QUICKTIME_BRANDS:
        return "video/quicktime"
    if major in _AUDIO_MP4_BRANDS:
        return "audio/mp4"
    if major.startswith(_3GPP_PREFIX):
        return "video/3gpp"
    return "video/mp4"


def _mpeg_audio_mime(head: bytes) -> str | None:
    """MPEG audio without an ID3 tag: an 11-bit frame sync and a plausible header."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    if layer == 0b00:
        # Layer bits 00 are reserved in MPEG audio but mean ADTS when the version bit says
        # MPEG-4/MPEG-2 AAC.
        return "audio/aac" if head[1] & 0xF6 == 0xF0 else None
    bitrate_index = head[2] >> 4
    sample_rate_index = (head[2] >> 2) & 0b11
    if version == 0b01 or bitrate_index in (0b0000, 0b1111) or sample_rate_index == 0b11:
        return None
    return "audio/mpeg"


def _text_mime(head: bytes) -> str | None:
    if _TEXT_CONTROL.search(head):
        return None
    # The head may end in the middle of a multi-byte character: decode incrementally and
    # accept a dangling partial sequence at the very end.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        text = decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip("\ufeff \t\r\n").encode("utf-8")
    if stripped.startswith(b"<"):
        # Markup: an error page served instead of a picture is the usual case here.
        if _SVG_START.search(stripped):
            return "image/svg+xml"
        if _HTML_START.match(stripped):
            return "text/html"
        if stripped.startswith(b"<?xml"):
            return "application/xml"
    if stripped[:1] in (b"{", b"["):
        return "application/json"
    return "text/plain"
