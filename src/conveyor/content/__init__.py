"""Judging content by what it is, not by what it claims: sniffing, images, HTML, languages.

``sniff`` names a file from its first bytes, ``images`` decodes pictures under a pixel
limit, ``html`` reduces model output to the few tags the descriptions API allows, and
``languages`` checks and normalises language tags, and ``serving`` decides how stored bytes
are answered (inline or attachment, and the headers that keep a browser from running them).
"""

from __future__ import annotations

from conveyor.content.html import ALLOWED_TAGS, sanitize_description_html
from conveyor.content.images import (
    CorruptImage,
    ImageInfo,
    ImageRejected,
    ImageTooLarge,
    UnsupportedImageFormat,
    check_image,
)
from conveyor.content.languages import (
    LANGUAGE_NAMES,
    UnknownLanguage,
    is_known_language,
    language_name,
    normalize_language,
    normalize_languages,
    primary,
)
from conveyor.content.serving import (
    CONTENT_SECURITY_POLICY,
    INLINE_MIMES,
    ServedAs,
    is_inline_safe,
    safe_download_name,
    served_as,
)
from conveyor.content.sniff import (
    IMAGE_MIMES,
    SNIFF_BYTES,
    extension_for,
    is_image_mime,
    sniff_mime,
)

__all__ = [
    "ALLOWED_TAGS",
    "CONTENT_SECURITY_POLICY",
    "IMAGE_MIMES",
    "INLINE_MIMES",
    "LANGUAGE_NAMES",
    "SNIFF_BYTES",
    "CorruptImage",
    "ImageInfo",
    "ImageRejected",
    "ImageTooLarge",
    "ServedAs",
    "UnknownLanguage",
    "UnsupportedImageFormat",
    "check_image",
    "extension_for",
    "is_image_mime",
    "is_inline_safe",
    "is_known_language",
    "language_name",
    "normalize_language",
    "normalize_languages",
    "primary",
    "safe_download_name",
    "sanitize_description_html",
    "served_as",
    "sniff_mime",
]
