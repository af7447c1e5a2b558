"""How stored bytes are answered to whoever asks for them: the one decision for every route.

Stored files come from clients and from providers; their bytes, not their names, say what
they are (``sniff.py``), and a browser given HTML or SVG from our origin runs its scripts as
us. So a file is shown **inline** only when its type is a media type browsers render without
running anything (raster images, audio, video); everything else is an **attachment**, sent
as ``application/octet-stream`` unless it is other media (HEIC, QuickTime…) or a passive
format a client reads as data (JSON, plain text, a ZIP, a PDF). Every answer carries
``X-Content-Type-Options: nosniff`` (the browser may not guess HTML out of a "picture") and
a ``Content-Security-Policy`` that sandboxes the response and allows no script, so even a
type we got wrong runs nothing.

An object store serving the bytes itself (a public bucket, a presigned link) can't add
headers per request, so objects are stored with ``served_as(mime).media_type``
(``assets/service.py``): HTML or SVG in a bucket is an ``application/octet-stream`` download.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote

from conveyor.content.sniff import extension_for

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "INLINE_MIMES",
    "ServedAs",
    "is_inline_safe",
    "safe_download_name",
    "served_as",
]

OCTET_STREAM = "application/octet-stream"

# Types a browser renders as media, with no script and no document around them.
# SVG is absent on purpose: it is a document that can carry scripts (``onload``).
INLINE_MIMES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/gif",
        "image/avif",
        "image/bmp",
        "audio/mpeg",
        "audio/wav",
        "audio/ogg",
        "audio/flac",
        "audio/mp4",
        "audio/aac",
        "video/mp4",
        "video/webm",
        "video/ogg",
    }
)

# Downloaded, never shown, and read as data by whoever asked: these keep their type.
_ATTACHMENT_KEEPS_TYPE = frozenset(
    {
        "application/json",
        "application/zip",
        "application/gzip",
        "application/pdf",
        "text/plain",
    }
)

# Under a media prefix, yet documents that can carry script.
_DOCUMENT_MEDIA = frozenset({"image/svg+xml"})

# No script, no plugin, no form, no frame; images and media from the response itself only
# (a browser showing an image or playing a video directly needs them), inline styles for the
# viewer some browsers wrap around media. ``sandbox`` gives the response an opaque origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)

_MAX_NAME = 200
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._ ()+-]")


@dataclass(frozen=True)
class ServedAs:
    """What to answer stored bytes with: the ``Content-Type`` and the headers around it."""

    media_type: str
    inline: bool
    headers: dict[str, str] = field(default_factory=dict)


def _base(mime: str | None) -> str:
    return (mime or "").split(";", 1)[0].strip().lower()


def is_inline_safe(mime: str | None) -> bool:
    """Whether bytes of this (sniffed) type may be shown inline from our origin."""
    return _base(mime) in INLINE_MIMES


def safe_download_name(filename: str | None) -> str | None:
    """The last path part of a client-given name, without control characters; None if
    nothing is left. (Names are shown to the person saving the file, never used as paths.)"""
    if not filename:
        return None
    name = re.split(r"[/\\]", filename)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    return name[:_MAX_NAME] or None


def _disposition(kind: str, name: str | None) -> str:
    if name is None:
        return kind
    # An ASCII fallback for old clients, the exact name (RFC 5987) for the rest.
    ascii_name = _UNSAFE_ASCII.sub("_", name) or "download"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def served_as(
    mime: str | None,
    filename: str | None = None,
    *,
    fallback_name: str | None = None,
    attachment: bool = False,
) -> ServedAs:
    """How to answer bytes whose sniffed type is ``mime``.

    ``filename`` is the name the client gave (may be anything); without one, an attachment
    is named ``fallback_name`` plus the extension of its real type. ``attachment=True``
    makes even an inline-safe type a download."""
    base = _base(mime)
    inline = base in INLINE_MIMES and not attachment
    # Media keeps its type even as a download (a HEIC, a QuickTime file: nothing runs in
    # them, and a provider fetching an input may look at the type); of the rest only passive
    # data formats. SVG is the one image type that is a document.
    is_media = base.startswith(("image/", "audio/", "video/")) and base not in _DOCUMENT_MEDIA
    keeps_type = is_media or base in _ATTACHMENT_KEEPS_TYPE
    media_type = base if keeps_type else OCTET_STREAM
    name = safe_download_name(filename)
    if name is None and fallback_name and not inline:
        name = safe_download_name(fallback_name + extension_for(base or OCTET_STREAM))
    headers = {
        "Content-Disposition": _disposition("inline" if inline else "attachment", name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    }
    return ServedAs(media_type, inline, headers)
