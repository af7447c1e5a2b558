"""Auth, client isolation and bad input on the native API: clear 4xx JSON, never a 500,
and nothing half-written behind a rejected request."""

from __future__ import annotations

import httpx
import pytest

from conveyor.assets.links import AssetLinks
from conveyor.clients.service import ClientService
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from tests.integration.conftest import Serve
from tests.support.adapters import ScriptedModel


def _assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "message", "code"}
    assert body["code"] == status
    if code is not None:
        assert body["error"] == code
    return body


async def _key(database_url: str, client: str) -> str:
    db = Database(database_url)
    try:
        key, _ = await ClientService(db, SystemClock()).create_key(client)
    finally:
        await db.dispose()
    return key


async def test_with_keys_every_request_needs_one_and_clients_are_isolated(
    serve: Serve, database_url: str
) -> None:
    alice = await _key(database_url, "alice")
    bob = await _key(database_url, "bob")
    async with serve(ScriptedModel()) as client:
        _assert_error(await client.get("/v1/jobs"), 401, "UNAUTHORIZED")
        _assert_error(
            await client.get("/v1/jobs", headers={"Authorization": "Bearer cvk_wrong"}), 401
        )
        _assert_error(await client.get("/v1/jobs", headers={"Authorization": "Basic eDp5"}), 401)
        as_alice = {"Authorization": f"Bearer {alice}"}
        as_bob = {"Authorization": f"Bearer {bob}"}
        job = (
            await client.post(
                "/v1/jobs",
                json={"model": "test/echo", "items": [{"text": "secret"}], "wait": 20},
                headers=as_alice,
            )
        ).json()
        assert job["status"] == "completed"
        _assert_error(await client.get(f"/v1/jobs/{job['id']}", headers=as_bob), 404)
        _assert_error(await client.post(f"/v1/jobs/{job['id']}/cancel", headers=as_bob), 404)
        assert (await client.get("/v1/jobs", headers=as_bob)).json()["data"] == []
        [item] = (await client.get(f"/v1/jobs/{job['id']}/items", headers=as_alice)).json()["data"]
        asset = item["output"]["files"][0]["asset_id"]
        _assert_error(await client.get(f"/v1/assets/{asset}/content", headers=as_bob), 404)
        ok = await client.get(f"/v1/assets/{asset}/content", headers=as_alice)
        assert ok.content == b"test/echo:secret"
    db = Database(database_url)
    try:
        keys = {k.client: k for k in await ClientService(db, SystemClock()).list_keys()}
    finally:
        await db.dispose()
    assert keys["alice"].last_used_at is not None
    assert keys["bob"].last_used_at is not None


async def test_without_keys_a_loopback_server_is_open(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        assert (await client.get("/v1/jobs")).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "VALIDATION_ERROR"),
        ({"model": "test/echo", "items": []}, 422, "VALIDATION_ERROR"),
        ({"model": "test/echo", "recipe": "model", "items": [{}]}, 422, "VALIDATION_ERROR"),
        ({"model": "no/such-model", "items": [{}]}, 422, "UNKNOWN_MODEL"),
        ({"recipe": "no-such-recipe", "items": [{}]}, 422, "VALIDATION_ERROR"),
        ({"recipe": "image-finish", "items": [{"image": {}}]}, 422, "VALIDATION_ERROR"),
        (
            {"recipe": "image-finish", "items": [{"image": {"asset_id": "missing"}}]},
            422,
            None,
        ),
        ({"model": "test/echo", "items": [{}], "wait": 301}, 422, "VALIDATION_ERROR"),
        ({"model": "test/echo", "items": [{}], "webhook_url": "ftp://x"}, 422, None),
        ({"model": "test/echo", "items": [{}], "languages": ["xx-nope"]}, 400, None),
        ({"model": "test/echo", "items": [{}], "unknown_field": 1}, 422, "VALIDATION_ERROR"),
    ],
)
async def test_bad_job_requests_get_clear_errors_and_leave_nothing(
    serve: Serve, body: dict, status: int, code: str | None
) -> None:
    async with serve(ScriptedModel()) as client:
        _assert_error(await client.post("/v1/jobs", json=body), status, code)
        assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_malformed_requests(serve: Serve) -> None:
    async with serve(ScriptedModel(), max_json_body_bytes=4096, max_upload_bytes=2048) as client:
        _assert_error(
            await client.post(
                "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
            ),
            422,
        )
        _assert_error(await client.get("/v1/jobs", params={"cursor": "!!!"}), 400, "INVALID_CURSOR")
        _assert_error(await client.get("/v1/jobs", params={"limit": 0}), 422)
        _assert_error(await client.get("/v1/jobs", params={"status": "sleeping"}), 422)
        _assert_error(await client.get("/v1/jobs/does-not-exist"), 404, "JOB_NOT_FOUND")
        _assert_error(await client.get("/v1/assets/nope"), 404)
        _assert_error(await client.get("/no/such/route"), 404)
        _assert_error(await client.delete("/v1/jobs"), 405)
        big = {"model": "test/echo", "items": [{"text": "x" * 5000}]}
        _assert_error(await client.post("/v1/jobs", json=big), 413, "PAYLOAD_TOO_LARGE")

        async def chunked() -> object:
            for _ in range(10):
                yield b"x" * 1000

        _assert_error(
            await client.post(
                "/v1/jobs", content=chunked(), headers={"content-type": "application/json"}
            ),
            413,
        )
        _assert_error(
            await client.post("/v1/assets", files={"file": ("big.png", b"\x89PNG" + b"0" * 5000)}),
            413,
        )
        _assert_error(await client.post("/v1/assets", files={"file": ("empty.png", b"")}), 400)
        _assert_error(await client.post("/v1/assets", data={"nofile": "1"}), 422)
        _assert_error(
            await client.post("/v1/assets", content=b"raw", headers={"content-type": "text/plain"}),
            422,
        )
        assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_signed_asset_links_work_without_a_key_and_expire(
    serve: Serve, database_url: str
) -> None:
    key = await _key(database_url, "owner")
    async with serve(public_url="http://conveyor.example") as client:
        auth = {"Authorization": f"Bearer {key}"}
        asset = (
            await client.post(
                "/v1/assets", files={"file": ("a.png", b"\x89PNG\r\n\x1a\nDATA")}, headers=auth
            )
        ).json()
        links = client.app.state.runtime.asset_links  # type: ignore[attr-defined]
        url = links.url(asset["id"])
        assert url.startswith("http://conveyor.example/v1/assets/")
        path = url.removeprefix("http://conveyor.example")
        ok = await client.get(path)
        assert ok.status_code == 200
        assert ok.content == b"\x89PNG\r\n\x1a\nDATA"
        assert ok.headers["content-type"] == "image/png"
        _assert_error(await client.get(path[:-1] + ("0" if path[-1] != "0" else "1")), 403)
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        stale = AssetLinks(runtime.secret_key, "http://conveyor.example", runtime.clock, ttl=-1)
        expired = stale.url(asset["id"]).removeprefix("http://conveyor.example")
        _assert_error(await client.get(expired), 403)
        _assert_error(await client.get(f"/v1/assets/{asset['id']}/content"), 401)


async def test_docs_page_loads_only_local_assets(serve: Serve) -> None:
    async with serve() as client:
        page = (await client.get("/docs")).text
        assert "cdn" not in page.lower()
        assets = [part.split('"')[0] for part in page.split('="')[1:] if part.startswith("/_docs/")]
        assert any(a.endswith(".js") for a in assets)
        assert any(a.endswith(".css") for a in assets)
        for asset in assets:
            assert (await client.get(asset)).status_code == 200, asset
        spec = (await client.get("/openapi.json")).json()
        assert "/v1/jobs" in spec["paths"]
        redoc = (await client.get("/redoc")).text
        assert "/_docs/redoc.standalone.js" in redoc
        assert "fonts.googleapis" not in redoc


async def test_an_exposed_server_never_runs_open(serve: Serve) -> None:
    # Bound to a public address (here only in its settings) with no key at all: nothing is
    # served without a key, rather than everything as the local client.
    async with serve(host="0.0.0.0") as client:  # noqa: S104
        _assert_error(await client.get("/v1/jobs"), 401)
