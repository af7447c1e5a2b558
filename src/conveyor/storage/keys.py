"""What a storage key may look like, and the content-addressed keys assets are stored under.

Keys are relative, slash-separated paths. Every backend checks them with ``check_key`` so a
key means the same object everywhere and can never climb out of its directory or prefix.
Uploads and results are stored under their SHA-256 (``sha256/ab/cd/<hex>.png``): writing the
same bytes twice lands on the same key, which makes retried steps harmless and lets
``store_ingested`` skip uploads it already has. The two fan-out levels keep directories of
a local store small.
"""

from __future__ import annotations

import re

from conveyor.storage.base import InvalidKey

MAX_KEY_BYTES = 1024

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_EXTENSION = re.compile(r"[a-z0-9]{1,16}")
# Backslashes would be path separators on Windows; control characters break S3 and logs.
_FORBIDDEN_CHARACTERS = re.compile(r"[\\\x00-\x1f\x7f]")


def check_key(key: str) -> str:
    """Return ``key`` if every backend can store it safely, else raise ``InvalidKey``."""
    if not key:
        raise InvalidKey("storage key is empty")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey(f"storage key {key!r} is not valid UTF-8 text") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKey(f"storage key is longer than {MAX_KEY_BYTES} bytes")
    if _FORBIDDEN_CHARACTERS.search(key):
        raise InvalidKey(f"storage key {key!r} contains a backslash or a control character")
    if key.startswith("/"):
        raise InvalidKey(f"storage key {key!r} is absolute")
    # Empty, "." and ".." segments would alias other keys or walk out of the store.
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise InvalidKey(f"storage key {key!r} has an empty, '.' or '..' segment")
    return key


def content_key(sha256_hex: str, extension: str | None = None) -> str:
    """The content-addressed key for a digest, e.g. ``sha256/ab/cd/abcd….png``."""
    digest = sha256_hex.lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise ValueError(f"not a SHA-256 hex digest: {sha256_hex!r}")
    key = f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    if extension:
        suffix = extension.removeprefix(".").lower()
        if not _EXTENSION.fullmatch(suffix):
            raise ValueError(f"not a file extension: {extension!r}")
        key = f"{key}.{suffix}"
    return key
