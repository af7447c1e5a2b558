"""What no client may turn into a 500: JSON nested a thousand levels deep, and NUL characters
(which PostgreSQL stores in neither text nor JSON) in a body, a query string, a path, a
cursor, a form field or an uploaded file's name. Each is a 400 in the error shape of the API
the path belongs to, on SQLite and PostgreSQL, and nothing is written."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from conveyor.app import create_app
from conveyor.assets.models import assets
from conveyor.core.http import MAX_JSON_DEPTH
from conveyor.jobs.models import jobs
from tests.integration.compat.photos_stack import mug_photo, open_photo_stack
from tests.integration.conftest import Serve, fast_settings
from tests.support.adapters import ScriptedModel
from tests.support.server import ServerThread


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def counts(client: httpx.AsyncClient) -> tuple[int, int]:
    """Jobs and asset rows in the database."""
    db = client.app.state.runtime.db  # type: ignore[attr-defined]
    async with db.read() as conn:
        job_count = await conn.scalar(select(func.count()).select_from(jobs))
        asset_count = await conn.scalar(select(func.count()).select_from(assets))
    return int(job_count or 0), int(asset_count or 0)


def assert_refused(answer: httpx.Response, error: str, code: int = 400) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert (body["error"], body["code"]) == (error, code), body
    assert body["message"]


def cursor(payload: Any) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_deep_json_is_refused_before_any_route_parses_it(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        # Seed 000 parsed the body before checking the signature: a RecursionError, a 500.
        descriptions = await client.post(
            "/api/v1/generate-descriptions",
            content=deep_json(1000),
            headers={"Content-Type": "application/json"},
        )
        assert_refused(descriptions, "JSON_TOO_DEEP")
        item = {"model": "test/echo", "items": [{"text": "a", "extra": nested(260)}]}
        assert_refused(await client.post("/v1/jobs", json=item), "JSON_TOO_DEEP")
        # No Content-Type at all is JSON to FastAPI, so it is scanned too.
        untyped = await client.post("/v1/jobs", content=deep_json(300))
        assert_refused(untyped, "JSON_TOO_DEEP")
        # Brackets inside strings are text, not nesting; the cap itself is allowed.
        text = {"model": "test/echo", "items": [{"text": "[" * 500}]}
        assert (await client.post("/v1/jobs", json=text)).status_code == 201
        # The body's object, "items", the item: three levels, then the rest up to the cap.
        at_cap = {"model": "test/echo", "items": [{"text": "a", "x": nested(MAX_JSON_DEPTH - 3)}]}
        assert (await client.post("/v1/jobs", json=at_cap)).status_code == 201
        assert (await counts(client))[0] == 2


@pytest.mark.parametrize(
    "field",
    [
        {"idempotency_key": "key\x00"},
        {"webhook_url": "https://example.com/\x00"},
        {"items": [{"text": "a\x00b"}]},
        {"items": [{"text": "a", "meta": {"k\x00": 1}}]},
        {"options": {"note": "\x00"}},
    ],
)
async def test_nul_in_a_job_is_refused_and_nothing_is_written(
    serve: Serve, field: dict[str, Any]
) -> None:
    async with serve(ScriptedModel()) as client:
        body = {"model": "test/echo", "items": [{"text": "a"}], **field}
        assert_refused(await client.post("/v1/jobs", json=body), "NUL_CHARACTER")
        raw = json.dumps(body, ensure_ascii=False).replace("\\u0000", "\x00").encode()
        assert b"\x00" in raw
        sent_raw = await client.post(
            "/v1/jobs", content=raw, headers={"Content-Type": "application/json"}
        )
        assert_refused(sent_raw, "NUL_CHARACTER")
        assert await counts(client) == (0, 0)
        # A backslash followed by "u0000" is text, not a NUL.
        escaped = {"model": "test/echo", "items": [{"text": "a\\u0000b"}]}
        assert (await client.post("/v1/jobs", json=escaped)).status_code == 201


async def test_nul_in_seed_000_lots_is_refused_before_the_signature(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        for lot in (
            {"lot_id": "lot\x00", "images": ["https://example.com/a.jpg"]},
            {"lot_id": "lot", "additional_info": "\x00", "images": ["https://example.com/a.jpg"]},
        ):
            answer = await client.post("/api/v1/generate-descriptions", json={"lots": [lot]})
            assert_refused(answer, "NUL_CHARACTER")
        assert await counts(client) == (0, 0)


async def test_nul_in_query_path_and_cursor_is_refused(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        assert_refused(await client.get("/v1/jobs?status=%00"), "NUL_CHARACTER")
        assert_refused(await client.get("/v1/jobs/ab%00cd"), "NUL_CHARACTER")
        for made_up in (
            cursor({"t": "2026-01-01T00:00:00", "id": "x"}),  # a time without a zone
            cursor({"t": "2026-01-01T00:00:00+00:00", "id": "x\x00"}),
        ):
            listed = await client.get("/v1/jobs", params={"cursor": made_up})
            assert_refused(listed, "INVALID_CURSOR")


async def test_nul_in_an_uploaded_file_name_is_refused(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        # Built by hand: httpx would percent-encode the NUL in the name.
        body = (
            b"--b\r\n"
            b'Content-Disposition: form-data; name="file"; filename="photo\x00.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + mug_photo((32, 32), "PNG") + b"\r\n--b--\r\n"
        )
        headers = {"Content-Type": "multipart/form-data; boundary=b"}
        upload = await client.post("/v1/assets", content=body, headers=headers)
        assert_refused(upload, "NUL_CHARACTER")
        assert await counts(client) == (0, 0)


async def test_seed_004_refuses_in_its_own_shape(database_url: str, tmp_path: Path) -> None:
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        assert_refused(await stack.http.get("/history?limit=%00"), "NUL_CHARACTER", 4000)
        assert_refused(await stack.http.get("/models/a%00b"), "NUL_CHARACTER", 4000)
        deep = await stack.http.post(
            "/process_single",
            content=deep_json(1000),
            headers={"Content-Type": "application/json"},
        )
        assert_refused(deep, "JSON_TOO_DEEP", 4000)
        photo = {"file": ("mug.png", mug_photo((64, 48), "PNG"), "image/png")}
        prompt = await stack.http.post(
            "/process_single",
            files=photo,
            data={"custom_prompt": "true", "custom_prompt_text": "a\x00b"},
        )
        assert_refused(prompt, "NUL_CHARACTER", 4000)
        assert (await stack.counts())[0] == 0


def _has_nul(value: Any) -> bool:
    return "\x00" in json.dumps(value, ensure_ascii=False)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


def test_fuzzed_jobs_never_reach_the_database_with_a_nul_or_too_deep(
    database_url: str, tmp_path: Path
) -> None:
    """Random job bodies, some with a NUL somewhere (text, keys, idempotency key) or nested
    past the cap: those are 400 and write nothing; the rest are never a 5xx."""
    app = create_app(
        fast_settings(database_url, tmp_path / "data"), extra_adapters=[ScriptedModel()]
    )
    accepted = 0
    with ServerThread(app) as server, httpx.Client(base_url=server.base_url) as http:

        @given(
            text=st.text(max_size=8),
            extra=json_values,
            depth=st.integers(0, 3) | st.integers(MAX_JSON_DEPTH - 4, 300),
            key=st.none() | st.text(min_size=1, max_size=8),
        )
        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(text: str, extra: Any, depth: int, key: str | None) -> None:
            nonlocal accepted
            body = {
                "model": "test/echo",
                "items": [{"text": text, "extra": nested_around(extra, depth)}],
            }
            if key is not None:
                body["idempotency_key"] = key
            answer = http.post("/v1/jobs", json=body)
            assert answer.status_code < 500, answer.text
            too_deep = _depth(body) > MAX_JSON_DEPTH
            if _has_nul(body) or too_deep:
                assert answer.status_code == 400, (body, answer.text)
                assert answer.json()["error"] in ("NUL_CHARACTER", "JSON_TOO_DEEP")
                if not _has_nul(body):
                    assert answer.json()["error"] == "JSON_TOO_DEEP"
            elif answer.status_code == 201:
                accepted += 1

        check()
        listed = http.get("/v1/jobs", params={"limit": 200}).json()["data"]
    # Idempotency keys may fold repeated bodies into one job: never more jobs than accepted.
    assert 0 < len(listed) <= accepted


def nested_around(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


async def test_a_405_allows_every_method_of_the_path(serve: Serve) -> None:
    """GET and POST /v1/jobs are two routes: a 405 names both, not just the first's."""
    async with serve(ScriptedModel()) as client:
        answer = await client.request("PUT", "/v1/jobs")
        assert answer.status_code == 405
        assert {m.strip() for m in answer.headers["allow"].split(",")} >= {"GET", "POST"}
        assert answer.json()["error"] == "METHOD_NOT_ALLOWED"
