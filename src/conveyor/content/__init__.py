"""Judging content by what it is, not by what it claims: sniffing, images, HTML, languages.

``sniff`` names a file from its first bytes, ``images`` decodes pictures under a pixel
limit, ``html`` reduces model output to the few tags the descriptions API allows, and
``languages`` checks and normalises language tags.
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
from conveyor.content.sniff import (
    IMAGE_MIMES,
    SNIFF_BYTES,
    extension_for,
    is_image_mime,
    sniff_mime,
)

__all__ = [
    "ALLOWED_TAGS",
    "IMAGE_MIMES",
    "LANGUAGE_NAMES",
    "SNIFF_BYTES",
    "CorruptImage",
    "ImageInfo",
    "ImageRejected",
    "ImageTooLarge",
    "UnknownLanguage",
    "UnsupportedImageFormat",
    "check_image",
    "extension_for",
    "is_image_mime",
    "is_known_language",
    "language_name",
    "normalize_language",
    "normalize_languages",
    "primary",
    "sanitize_description_html",
    "sniff_mime",
]
