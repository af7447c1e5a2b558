"""Stored bytes are served so a browser runs nothing from them: an HTML file named ``.png``
and an SVG with ``onload``, uploaded through the real API, come back from every route that
serves stored bytes as downloads, never inline, always with ``nosniff`` and a sandboxing
Content-Security-Policy; a real picture still shows inline."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from tests.integration.conftest import Serve
from tests.support.adapters import ScriptedModel

HTML_AS_PNG = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG_ONLOAD = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.cookie)">'
    b'<rect width="10" height="10"/></svg>'
)
PUBLIC = "http://conveyor.example"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def _routes(client: httpx.AsyncClient, asset_id: str) -> dict[str, str]:
    """Every route that answers an asset's stored bytes, by name."""
    links = client.app.state.runtime.asset_links  # type: ignore[attr-defined]
    return {
        "content": f"/v1/assets/{asset_id}/content",
        # The signed link is also seed 003's ``file_url`` on local storage.
        "signed": links.url(asset_id).removeprefix(PUBLIC),
        "console": f"/console/assets/{asset_id}",
        "seed 002 file": f"/api/media/files/{asset_id}/",
    }


def _assert_guarded(answer: httpx.Response) -> None:
    assert answer.headers["x-content-type-options"] == "nosniff"
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "sandbox" in policy
    assert "script-src" not in policy


async def _upload(client: httpx.AsyncClient, name: str, data: bytes) -> dict[str, str]:
    answer = await client.post("/v1/assets", files={"file": (name, data, "image/png")})
    assert answer.status_code == 201, answer.text
    uploaded: dict[str, str] = answer.json()
    return uploaded


async def test_markup_is_never_served_inline_from_any_route(serve: Serve) -> None:
    async with serve(public_url=PUBLIC) as client:
        html = await _upload(client, "x.png", HTML_AS_PNG)
        svg = await _upload(client, "logo.svg", SVG_ONLOAD)
        # The type comes from the bytes, not from the name or the declared type.
        assert html["mime_type"] == "text/html"
        assert svg["mime_type"] == "image/svg+xml"
        for uploaded, data in ((html, HTML_AS_PNG), (svg, SVG_ONLOAD)):
            for route, path in _routes(client, uploaded["id"]).items():
                answer = await client.get(path)
                assert answer.status_code == 200, (route, answer.text)
                assert answer.content == data, route
                assert answer.headers["content-type"] == "application/octet-stream", route
                assert answer.headers["content-disposition"].startswith("attachment"), route
                _assert_guarded(answer)


async def test_a_picture_is_still_shown_inline_with_the_same_guards(serve: Serve) -> None:
    async with serve(public_url=PUBLIC) as client:
        png = await _upload(client, "фото 1.png", _png())
        assert png["mime_type"] == "image/png"
        for route, path in _routes(client, png["id"]).items():
            answer = await client.get(path)
            assert answer.status_code == 200, (route, answer.text)
            assert answer.headers["content-type"] == "image/png", route
            assert answer.headers["content-disposition"].startswith("inline"), route
            _assert_guarded(answer)
        named = (await client.get(f"/v1/assets/{png['id']}/content")).headers
        # The client's name survives exactly in filename*, with an ASCII stand-in beside it.
        assert named["content-disposition"] == (
            "inline; filename=\"____ 1.png\"; filename*=UTF-8''%D1%84%D0%BE%D1%82%D0%BE%201.png"
        )


async def test_job_downloads_are_attachments_with_the_guards(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        job = (
            await client.post("/v1/jobs", json={"model": "test/echo", "items": [{"text": "a"}]})
        ).json()
        assert "id" in job, job
        for fmt, kind in (("json", "application/json"), ("zip", "application/zip")):
            answer = await client.get(f"/v1/jobs/{job['id']}/download", params={"format": fmt})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith(kind)
            assert answer.headers["content-disposition"].startswith(
                f'attachment; filename="job-{job["id"]}.{fmt}"'
            )
            _assert_guarded(answer)
