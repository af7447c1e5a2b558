"""Providers as data over HTTP: shipped names need an explicit replace and come back on
removal, every fault is located at once, seed 003's AIModel row becomes a callable model,
the dry run shows the exact request without sending it, and only admin keys edit."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conveyor.sim import SimConfig, start_simulator
from tests.integration.conftest import Serve

YAML = {"Content-Type": "application/yaml"}

TINY_KIE = """
name: kie
title: Kie.ai (operator's copy)
docs: https://docs.kie.ai/market/common/get-task-detail
base_url: https://api.kie.ai
simulate_path: /kie
auth: {type: bearer, key_env: [CONVEYOR_KIE_API_KEY]}
models:
  - id: kie/tiny
    kind: image
    title: Tiny
    inputs: {prompt: {type: string}}
    submit:
      path: /api/v1/jobs/createTask
      body: {model: seedream/4.5-text-to-image, input: {prompt: "{{prompt}}"}}
      task_id: data.taskId
    poll:
      path: /api/v1/jobs/recordInfo
      query: {taskId: "{{task_id}}"}
    status: {path: data.state, running: [waiting, queuing, generating], success: [success]}
    result: {paths: ["data.resultJson|json.resultUrls[0]"]}
"""

# Seed 003's AIModel, with the request body it sent to Kie (placeholders where it varies).
SEED_ROW: dict[str, Any] = {
    "provider": "kie",
    "name": "Seedance 1.5 Pro fast",
    "model_type": "VIDEO",
    "api_endpoint": "/api/v1/jobs/createTask",
    "request_schema": {
        "model": "bytedance/seedance-1.5-pro",
        "input": {
            "prompt": "{{prompt}}",
            "input_urls": ["{{image_url}}"],
            "aspect_ratio": "16:9",
            "resolution": "720p",
            "duration": "8",
        },
    },
    "is_active": True,
}
FRAME = "https://photos.example/123.jpg"


async def test_a_shipped_name_needs_an_explicit_replace_and_removal_restores_it(
    serve: Serve,
) -> None:
    async with serve() as client:
        refused = await client.post("/v1/providers", content=TINY_KIE, headers=YAML)
        assert refused.status_code == 409
        assert refused.json()["error"] == "PROVIDER_EXISTS"
        assert "shipped with Conveyor" in refused.json()["message"]
        assert "PUT /v1/providers/kie" in refused.json()["message"]
        assert (await client.get("/v1/models/kie/tiny")).status_code == 404

        replaced = await client.post(
            "/v1/providers", params={"replace": "true"}, content=TINY_KIE, headers=YAML
        )
        assert replaced.status_code == 201, replaced.text
        assert replaced.json()["replaces_shipped"] is True
        assert replaced.json()["models"] == ["kie/tiny"]
        assert (await client.get("/v1/models/kie/seedream-4.5")).status_code == 404
        shown = (await client.get("/v1/providers/kie")).json()
        assert shown["origin"] == "stored"
        assert shown["source"] == TINY_KIE

        again = await client.post("/v1/providers", content=TINY_KIE, headers=YAML)
        assert again.status_code == 409
        assert "already a stored provider" in again.json()["message"]
        put = await client.put("/v1/providers/kie", content=TINY_KIE, headers=YAML)
        assert put.status_code == 200
        assert put.json()["created"] is False
        mismatch = await client.put("/v1/providers/other", content=TINY_KIE, headers=YAML)
        assert mismatch.status_code == 422
        assert "the URL says 'other'" in mismatch.json()["details"]["errors"][0]

        removed = await client.delete("/v1/providers/kie")
        assert removed.status_code == 200
        assert removed.json() == {"name": "kie", "removed": True, "restored_shipped": True}
        assert (await client.get("/v1/models/kie/seedream-4.5")).status_code == 200
        assert (await client.get("/v1/models/kie/tiny")).status_code == 404
        assert (await client.get("/v1/providers/kie")).json()["origin"] == "shipped"

        shipped = await client.delete("/v1/providers/kie")
        assert shipped.status_code == 409
        assert shipped.json()["error"] == "PROVIDER_SHIPPED"
        assert (await client.delete("/v1/providers/nope")).status_code == 404
        local = await client.post(
            "/v1/providers", content=TINY_KIE.replace("kie", "local"), headers=YAML
        )
        assert local.status_code == 422
        assert "reserved for local engines" in local.json()["message"]


async def test_every_fault_is_located_at_once(serve: Serve) -> None:
    spec = {
        "name": "Bad Name",
        "title": "Bad",
        "docs": "https://example.invalid/docs",
        "base_url": "https://api.example.invalid",
        "models": [
            {
                "id": "acme/x",
                "kind": "image",
                "title": "X",
                "submit": {"path": "/go", "body": {"p": "{{prompt}}", "n": "{{n?}}"}},
                "poll": {"path": "/t/{{task_id}}", "interval": -1},
                "status": {"path": "s", "success": ["done"]},
                "result": {"paths": ["url"]},
            }
        ],
    }
    async with serve() as client:
        answer = await client.post("/v1/providers", json=spec)
        assert answer.status_code == 422
        body = answer.json()
        assert body["error"] == "INVALID_PROVIDER_SPEC"
        assert body["details"]["errors"] == [
            "name: String should match pattern '^[a-z0-9][a-z0-9_-]*$' (got 'Bad Name')",
            "models[0] acme/x: poll.interval: Input should be greater than 0 (got -1)",
        ]
        spec["name"] = "acme"
        spec["models"][0]["poll"]["interval"] = 3  # type: ignore[index]
        answer = await client.post("/v1/providers", json=spec)
        assert answer.status_code == 422
        assert answer.json()["details"]["errors"] == [
            "models[0] acme/x: async models need submit.task_id (where the task id is)",
            "models[0] acme/x: submit uses {{prompt}} but the model never gets 'prompt': "
            "declare it under inputs or give it a default (the model has: nothing)",
            "models[0] acme/x: submit uses {{n?}} but the model never gets 'n': declare it "
            "under inputs or give it a default (the model has: nothing)",
        ]

        plain = await client.post(
            "/v1/providers", content="name: x", headers={"Content-Type": "text/plain"}
        )
        assert plain.status_code == 415
        assert "application/yaml" in plain.json()["message"]
        broken = await client.post("/v1/providers", content="name: [unclosed", headers=YAML)
        assert broken.status_code == 422
        assert "not valid YAML" in broken.json()["details"]["errors"][0]
        bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
        aliased = await client.post("/v1/providers", content=bomb, headers=YAML)
        assert aliased.status_code == 422
        assert "aliases (*name) are not allowed" in aliased.json()["message"]
        not_json = await client.post(
            "/v1/providers", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 422
        listed = [p["name"] for p in (await client.get("/v1/providers")).json()]
        assert "acme" not in listed


async def test_a_seed_ai_model_row_becomes_a_callable_kie_model(serve: Serve) -> None:
    async with (
        await start_simulator(SimConfig(latency_scale=0.0)) as sim,
        serve(simulate=True, simulator_url=sim.base_url) as client,
    ):
        added = await client.post("/v1/providers", json=SEED_ROW)
        assert added.status_code == 201, added.text
        assert added.json()["model"] == "kie/seedance-1.5-pro-fast"
        assert added.json()["replaces_shipped"] is True
        # The shipped Kie models stay; the row's model joins them.
        assert {"kie/seedance-1.5-pro", "kie/seedream-4.5", "kie/seedance-1.5-pro-fast"} == set(
            added.json()["models"]
        )
        entry = (await client.get("/v1/models/kie/seedance-1.5-pro-fast")).json()
        assert entry["kind"] == "video"
        assert entry["title"] == "Seedance 1.5 Pro fast"
        assert entry["available"] is True
        assert {i["name"]: i["type"] for i in entry["spec"]["inputs"]} == {
            "prompt": "any",
            "image_url": "any",
        }

        inputs = {"prompt": "arm wrestling", "image_url": {"url": FRAME}}
        dry = await client.post(
            "/v1/models/kie/seedance-1.5-pro-fast/render", json={"inputs": inputs}
        )
        assert dry.status_code == 200, dry.text
        expected_body = json.loads(
            json.dumps(SEED_ROW["request_schema"])
            .replace("{{prompt}}", "arm wrestling")
            .replace("{{image_url}}", FRAME)
        )
        rendered = dry.json()
        assert rendered["method"] == "POST"
        assert rendered["url"] == f"{sim.base_url}/kie/api/v1/jobs/createTask"
        assert rendered["body"] == expected_body
        assert rendered["headers"]["Authorization"] == "Bearer ***"
        assert rendered["simulated"] is True
        assert sim.counters()["submissions_total"] == 0  # a dry run sends nothing

        job = (
            await client.post(
                "/v1/jobs",
                json={"model": "kie/seedance-1.5-pro-fast", "items": [inputs], "wait": 30},
            )
        ).json()
        assert job["status"] == "completed", job
        [item] = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
        assert item["output"]["files"][0]["mime_type"] == "image/gif"
        (task,) = sim.state.tasks.values()
        # The request that went out is the one the dry run showed.
        assert {"model": task.model, "input": task.inputs} == expected_body

        twice = await client.post("/v1/providers", json=SEED_ROW)
        assert twice.status_code == 409
        assert twice.json()["error"] == "MODEL_EXISTS"
        replaced = await client.post("/v1/providers?replace=true", json=SEED_ROW)
        assert replaced.status_code == 200

        off = {**SEED_ROW, "name": "Seedance off", "is_active": False}
        assert (await client.post("/v1/providers", json=off)).status_code == 200
        entry = (await client.get("/v1/models/kie/seedance-off")).json()
        assert entry["available"] is False
        assert "switched off" in entry["unavailable_reason"]

        assert (await client.delete("/v1/providers/kie")).json()["restored_shipped"] is True
        assert (await client.get("/v1/models/kie/seedance-1.5-pro-fast")).status_code == 404


async def test_what_an_ai_model_row_cannot_say_is_refused_with_its_field(serve: Serve) -> None:
    async with serve() as client:
        unknown = await client.post("/v1/providers", json={**SEED_ROW, "provider": "nope"})
        assert unknown.status_code == 422
        (line,) = unknown.json()["details"]["errors"]
        assert line.startswith("provider: no provider 'nope' here (known: ")
        assert "add that provider as a full spec first" in line

        bad = {**SEED_ROW, "model_type": "HOLOGRAM", "api_endpoint": "https://evil.example/x"}
        answer = await client.post("/v1/providers", json=bad)
        assert answer.json()["details"]["errors"] == [
            "model_type: 'HOLOGRAM' is not one of IMAGE, VIDEO, AUDIO, TEXT, VISION, "
            "TRANSLATE, BACKGROUND",
            "api_endpoint: 'https://evil.example/x' is not a path ('/api/...') nor a URL under "
            "kie's base URL https://api.kie.ai; the key is never sent anywhere else",
        ]
        no_pattern = await client.post("/v1/providers", json={**SEED_ROW, "model_type": "TEXT"})
        assert "provider 'kie' has no text model" in no_pattern.json()["message"]
        extra = await client.post("/v1/providers", json={**SEED_ROW, "price": 1})
        assert extra.json()["details"]["errors"] == ["price: Extra inputs are not permitted"]
        stray = {**SEED_ROW, "request_schema": {"id": "{{task_id}}"}}
        answer = await client.post("/v1/providers", json=stray)
        assert "submit cannot use {{task_id}}" in answer.json()["details"]["errors"][0]
        assert (await client.get("/v1/providers/kie")).json()["origin"] == "shipped"


async def test_the_dry_run_masks_keys_and_checks_inputs(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_GENAPI_API_KEY", "gk-very-secret-1234")
    query_auth = TINY_KIE.replace("name: kie", "name: acme").replace("kie/tiny", "acme/tiny")
    query_auth = query_auth.replace(
        "auth: {type: bearer, key_env: [CONVEYOR_KIE_API_KEY]}",
        "auth: {type: query, param: key, key_env: [ACME_KEY]}",
    )
    monkeypatch.setenv("ACME_KEY", "acme-secret-5678")
    async with serve() as client:
        dry = await client.post(
            "/v1/models/genapi/z-image/render", json={"inputs": {"prompt": "a lighthouse"}}
        )
        assert dry.status_code == 200, dry.text
        assert "gk-very-secret-1234" not in dry.text
        rendered = dry.json()
        assert rendered["url"] == "https://api.gen-api.ru/api/v1/networks/z-image"
        assert rendered["headers"]["Authorization"] == "Bearer ***"
        assert rendered["headers"]["Content-Type"] == "application/json"
        assert rendered["body"]["prompt"] == "a lighthouse"
        assert rendered["body"]["width"] == 992
        assert rendered["simulated"] is False

        assert (await client.post("/v1/providers", content=query_auth, headers=YAML)).is_success
        dry = await client.post("/v1/models/acme/tiny/render", json={"inputs": {"prompt": "x"}})
        assert "acme-secret-5678" not in dry.text
        assert dry.json()["url"] == "https://api.kie.ai/api/v1/jobs/createTask?key=***"

        missing = await client.post("/v1/models/genapi/z-image/render", json={"inputs": {}})
        assert missing.status_code == 422
        assert missing.json()["error"] == "MISSING_VARIABLES"
        assert missing.json()["details"]["missing"] == ["prompt"]
        wrong = await client.post(
            "/v1/models/genapi/z-image/render", json={"inputs": {"prompt": 5}}
        )
        assert wrong.status_code == 422
        assert "prompt: expected string, got int" in wrong.json()["message"]
        with_asset = await client.post(
            "/v1/models/kie/seedance-1.5-pro/render",
            json={"inputs": {"prompt": "go", "image": {"asset_id": "a-1"}}},
        )
        assert with_asset.json()["body"]["input"]["input_urls"] == ["<URL of asset a-1>"]
        assert with_asset.json()["notes"] == [
            "image: asset a-1 is sent as a URL to fetch it",
            "a real call would be refused now: no API key for Kie.ai: set CONVEYOR_KIE_API_KEY",
        ]
        local = await client.post("/v1/models/local/finish/render", json={"inputs": {}})
        assert local.status_code == 422
        assert local.json()["error"] == "NOT_AN_HTTP_MODEL"
        assert (await client.post("/v1/models/no/such/render", json={})).status_code == 404


async def test_a_provider_test_says_when_the_simulator_answered(serve: Serve) -> None:
    async with await start_simulator(SimConfig(latency_scale=0.0)) as sim:
        async with serve(simulate=True, simulator_url=sim.base_url) as client:
            answer = await client.post("/v1/providers/genapi/test", json={})
            assert answer.status_code == 200, answer.text
            result = answer.json()
            assert result["status"] == "completed"
            assert result["model"] == "genapi/z-image"
            assert result["simulated"] is True
            assert result["message"] == "genapi/z-image works (answered by the provider simulator)"
            assert result["output"]["files"][0]["mime_type"] == "image/png"
            other = await client.post(
                "/v1/providers/genapi/test", json={"model": "kie/seedream-4.5"}
            )
            assert other.status_code == 422
            assert "not a model of provider genapi" in other.json()["message"]
            assert (await client.post("/v1/providers/nope/test", json={})).status_code == 404
        assert sim.counters()["submissions"]["genapi"] == {"z-image": 1}


async def test_only_admin_keys_change_providers_and_keys(serve: Serve) -> None:
    async with serve() as anonymous:
        clients = anonymous.app.state.runtime.clients  # type: ignore[attr-defined]
        client_key, _ = await clients.create_key("acme")
        admin_key, _ = await clients.create_key("ops", scope="admin")
        base = str(anonymous.base_url)
        as_client = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {client_key}"}
        )
        as_admin = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {admin_key}"}
        )
        async with as_client, as_admin:
            assert (await anonymous.get("/v1/providers")).status_code == 401
            assert (await as_client.get("/v1/providers")).status_code == 200
            for method, path in [
                ("POST", "/v1/providers"),
                ("PUT", "/v1/providers/kie"),
                ("DELETE", "/v1/providers/kie"),
                ("GET", "/v1/providers/kie"),
                ("GET", "/v1/keys"),
                ("POST", "/v1/keys"),
                ("DELETE", "/v1/keys/abcd"),
            ]:
                refused = await as_client.request(method, path, content=TINY_KIE, headers=YAML)
                assert refused.status_code == 403, (method, path)
                body = refused.json()
                assert body["error"] == "ADMIN_KEY_REQUIRED"
                assert f"{method} {path} needs an admin API key" in body["message"]
                assert "conveyor keys create NAME --admin" in body["message"]

            added = await as_admin.put("/v1/providers/kie", content=TINY_KIE, headers=YAML)
            assert added.status_code == 201
            keys = (await as_admin.get("/v1/keys")).json()
            assert {(k["client"], k["scope"]) for k in keys} == {
                ("acme", "client"),
                ("ops", "admin"),
            }
            assert all("key" not in k for k in keys)
            made = await as_admin.post("/v1/keys", json={"client": "robot", "scope": "admin"})
            assert made.status_code == 201
            new_key = made.json()["key"]
            assert new_key.startswith("cvk_")
            robot = {"Authorization": f"Bearer {new_key}"}
            assert (await as_client.get("/v1/keys", headers=robot)).status_code == 200
            bad_scope = await as_admin.post("/v1/keys", json={"client": "x", "scope": "root"})
            assert bad_scope.status_code == 422
            revoked = await as_admin.delete(f"/v1/keys/{made.json()['id']}")
            assert revoked.json()["revoked_at"] is not None
            assert (await as_client.get("/v1/keys", headers=robot)).status_code == 401
