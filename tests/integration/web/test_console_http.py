"""The console over real HTTP on both databases: headers, CSRF, sign-in, each client's own
work, the event stream and cached thumbnails. (The browser tests are in tests/e2e.)"""

from __future__ import annotations

import io
import re

import httpx
from PIL import Image

from conveyor.clients.service import ClientService
from conveyor.runtime import Runtime
from conveyor.web.thumbnails import thumbnail_key
from tests.integration.conftest import Serve
from tests.support.adapters import ScriptedModel

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _runtime(client: httpx.AsyncClient) -> Runtime:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


async def _token(client: httpx.AsyncClient, path: str = "/") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    match = TOKEN.search(page.text)
    assert match is not None
    return match.group(1)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 80), (10, 200, 90)).save(out, "PNG")
    return out.getvalue()


async def test_console_pages_carry_the_security_headers(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        for path in ["/", "/console/jobs", "/console/models", "/console/workers"]:
            page = await client.get(path)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            csp = page.headers["content-security-policy"]
            assert "default-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["referrer-policy"] == "same-origin"
        static = await client.get("/console/static/console.js")
        assert static.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_a_post_needs_the_csrf_token_of_its_session(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        token = await _token(client)
        refused = await client.post("/console/run", data={"run": "model:test/echo"})
        assert refused.status_code == 403
        assert "reload the page" in refused.text
        stranger = httpx.AsyncClient(base_url=str(client.base_url))
        async with stranger:
            # A token from another session does not fit this one.
            other = await _token(stranger)
            forged = await client.post(
                "/console/run", data={"run": "model:test/echo", "csrf_token": other}
            )
            assert forged.status_code == 403
        assert (await client.get("/v1/jobs")).json()["data"] == []

        done = await client.post(
            "/console/run", data={"run": "model:test/echo", "csrf_token": token}
        )
        assert done.status_code == 303
        assert re.fullmatch(r"/console/jobs/[0-9a-f-]{36}", done.headers["location"])
        assert len((await client.get("/v1/jobs")).json()["data"]) == 1


async def test_signed_in_people_see_only_their_own_work(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        clients: ClientService = _runtime(client).clients
        alice_key, _ = await clients.create_key("alice")
        bob_key, _ = await clients.create_key("bob")
        bob = {"Authorization": f"Bearer {bob_key}"}
        upload = await client.post("/v1/assets", headers=bob, files={"file": ("b.png", _png())})
        bobs_asset = upload.json()["id"]
        job = await client.post(
            "/v1/jobs", headers=bob, json={"model": "test/echo", "items": [{"text": "b"}]}
        )
        bobs_job = job.json()["id"]

        away = await client.get("/console/jobs")
        assert away.status_code == 303
        assert away.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fjobs"
        token = await _token(client, "/console/sign-in")
        wrong = await client.post("/console/sign-in", data={"key": "cvk_no", "csrf_token": token})
        assert wrong.status_code == 401
        token = TOKEN.search(wrong.text).group(1)  # type: ignore[union-attr]
        signed = await client.post(
            "/console/sign-in",
            data={"key": alice_key, "csrf_token": token, "next": "https://evil.example/"},
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert alice_key not in cookie

        assert (await client.get("/console/jobs")).status_code == 200
        assert bobs_job not in (await client.get("/console/jobs")).text
        for path in [
            f"/console/jobs/{bobs_job}",
            f"/console/jobs/{bobs_job}/events",
            f"/console/jobs/{bobs_job}/state",
            f"/console/jobs/{bobs_job}/download",
            f"/console/assets/{bobs_asset}",
            f"/console/assets/{bobs_asset}/thumbnail",
        ]:
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/console/keys")).text.count("Only an administrator") == 1

        (alice_info,) = [k for k in await clients.list_keys() if k.client == "alice"]
        await clients.revoke_key(alice_info.id)
        assert (await client.get("/console/jobs")).status_code == 303


async def test_a_cross_site_arrival_is_bounced_without_replacing_the_cookie(
    serve: Serve,
) -> None:
    async with serve(ScriptedModel()) as client:
        page = await client.get("/console/jobs", headers={"Sec-Fetch-Site": "cross-site"})
        assert page.status_code == 200
        assert 'http-equiv="refresh" content="0;url=/console/jobs"' in page.text
        assert "set-cookie" not in page.headers


async def test_the_job_stream_and_thumbnails(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        token = await _token(client)
        upload = await client.post(
            "/console/run",
            data={"run": "recipe:image-finish", "csrf_token": token},
            files={"item.image": ("green.png", _png(), "image/png")},
        )
        assert upload.status_code == 303
        job_id = upload.headers["location"].rsplit("/", 1)[-1]
        events: list[str] = []
        async with client.stream("GET", f"/console/jobs/{job_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                if events and events[-1] == "finished":
                    break
        assert events[0] == "job"
        assert "item.completed" in events

        page = await client.get(f"/console/jobs/{job_id}")
        thumbnails = re.findall(r'src="(/console/assets/[^"]+/thumbnail)"', page.text)
        assert len(thumbnails) == 2
        runtime = _runtime(client)
        for url in thumbnails:
            first = await client.get(url)
            assert first.status_code == 200
            assert first.headers["content-type"] == "image/webp"
            asset_id = url.split("/")[3]
            async with runtime.db.read() as conn:
                asset = await runtime.assets.get(conn, asset_id)
            key = thumbnail_key(asset.sha256)
            assert await runtime.storage.exists(key)
            # Made once: a second view is served from storage unchanged.
            await runtime.storage.write(key, _one(b"cached"), content_type="image/webp")
            assert (await client.get(url)).content == b"cached"
        zipped = await client.get(f"/console/jobs/{job_id}/download?format=zip")
        assert zipped.headers["content-type"] == "application/zip"


async def _one(data: bytes):  # type: ignore[no-untyped-def]
    yield data
