"""Storage keys: the content-addressed layout and the rule every backend enforces."""

from __future__ import annotations

import hashlib
import posixpath
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.storage import InvalidKey, check_key, content_key

DIGEST = hashlib.sha256(b"hello").hexdigest()


def test_content_key_fans_out_by_digest_prefix() -> None:
    assert content_key(DIGEST, "png") == f"sha256/{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST}.png"
    assert content_key(DIGEST, None) == f"sha256/{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST}"


def test_content_key_normalises_case_and_leading_dot() -> None:
    assert content_key(DIGEST.upper(), ".PNG") == content_key(DIGEST, "png")


@pytest.mark.parametrize("digest", ["", "abc", DIGEST[:-1], DIGEST + "0", "g" * 64])
def test_content_key_rejects_non_digests(digest: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        content_key(digest, "png")


@pytest.mark.parametrize("extension", ["p/g", "..", "a.b", "x" * 17, "pn g"])
def test_content_key_rejects_odd_extensions(extension: str) -> None:
    with pytest.raises(ValueError, match="extension"):
        content_key(DIGEST, extension)


def test_content_keys_pass_the_key_check() -> None:
    assert check_key(content_key(DIGEST, "webp")) == content_key(DIGEST, "webp")


def test_overlong_key_is_rejected() -> None:
    check_key("k" * 1024)
    with pytest.raises(InvalidKey, match="longer"):
        check_key("k" * 1025)


def test_lone_surrogate_is_rejected() -> None:
    with pytest.raises(InvalidKey, match="UTF-8"):
        check_key("bad\udc80name")


key_pieces = st.sampled_from(["/", ".", "..", "a", "b.png", "\\", "\x00", "é", " ", "C:"])


@given(st.lists(key_pieces, max_size=12).map("".join) | st.text(max_size=30))
def test_accepted_keys_stay_inside_the_store(key: str) -> None:
    try:
        check_key(key)
    except InvalidKey:
        return
    root = PurePosixPath("/store")
    resolved = posixpath.normpath(root / key)
    assert resolved.startswith("/store/")
    assert posixpath.relpath(resolved, root) == key
