"""The one decision for serving stored bytes: what shows inline, what downloads, and the
headers every answer carries."""

from __future__ import annotations

import pytest

from conveyor.content.serving import CONTENT_SECURITY_POLICY, safe_download_name, served_as


@pytest.mark.parametrize(
    "mime",
    ["image/png", "image/jpeg", "image/webp", "image/gif", "audio/mpeg", "audio/wav", "video/mp4"],
)
def test_raster_images_audio_and_video_show_inline(mime: str) -> None:
    served = served_as(mime, "a.bin")
    assert served.inline
    assert served.media_type == mime
    assert served.headers["Content-Disposition"].startswith("inline;")


@pytest.mark.parametrize(
    "mime",
    ["text/html", "image/svg+xml", "application/xml", "application/xhtml+xml", "", None],
)
def test_markup_and_unknown_types_download_as_octet_stream(mime: str | None) -> None:
    served = served_as(mime, "x.png")
    assert not served.inline
    assert served.media_type == "application/octet-stream"
    assert served.headers["Content-Disposition"].startswith("attachment;")


def test_passive_data_downloads_keep_their_type() -> None:
    served = served_as("application/json; charset=utf-8", None, fallback_name="asset-1")
    assert served.media_type == "application/json"
    assert served.headers["Content-Disposition"] == (
        "attachment; filename=\"asset-1.json\"; filename*=UTF-8''asset-1.json"
    )


def test_every_answer_is_guarded_even_inline_ones() -> None:
    for served in (
        served_as("image/png"),
        served_as("text/html"),
        served_as("image/png", attachment=True),
    ):
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert served.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "sandbox" in CONTENT_SECURITY_POLICY
    assert served_as("image/png").headers["Content-Disposition"] == "inline"
    assert not served_as("image/png", attachment=True).inline


def test_client_names_cannot_break_the_header_or_name_a_path() -> None:
    assert safe_download_name("../../etc/passwd") == "passwd"
    assert safe_download_name("C:\\temp\\evil.html") == "evil.html"
    assert safe_download_name("a\r\nSet-Cookie: x=1.png") == "aSet-Cookie: x=1.png"
    assert safe_download_name("..") is None
    disposition = served_as("text/html", 'x";\r\n.png').headers["Content-Disposition"]
    assert "\r" not in disposition
    assert "\n" not in disposition
    assert disposition == "attachment; filename=\"x__.png\"; filename*=UTF-8''x%22%3B.png"


def test_other_media_downloads_with_its_type_but_svg_never_does() -> None:
    heic = served_as("image/heic", "a.heic")
    assert (heic.inline, heic.media_type) == (False, "image/heic")
    quicktime = served_as("video/quicktime")
    assert (quicktime.inline, quicktime.media_type) == (False, "video/quicktime")
    svg = served_as("IMAGE/SVG+XML; charset=utf-8")
    assert (svg.inline, svg.media_type) == (False, "application/octet-stream")
