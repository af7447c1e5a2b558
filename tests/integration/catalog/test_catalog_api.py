"""The catalogue over HTTP: models with availability, providers with health, and a provider
added as data at run time that is callable at once (against the simulator)."""

from __future__ import annotations

import pytest

from conveyor.sim import SimConfig, start_simulator
from tests.integration.conftest import Serve

NEW_PROVIDER = """
name: acme
title: ACME Images (gen-api style)
docs: https://example.invalid/docs
base_url: https://api.acme.invalid/api/v1
simulate_path: /genapi/api/v1
auth:
  type: bearer
  key_env: [ACME_API_KEY]
models:
  - id: acme/painter
    kind: image
    title: ACME painter
    inputs:
      prompt: {type: string}
    defaults: {width: 64, height: 64}
    submit:
      method: POST
      path: /networks/z-image
      body: {prompt: "{{prompt}}", width: "{{width}}", height: "{{height}}"}
      task_id: request_id
    poll:
      path: /request/get/{{task_id}}
      initial_interval: 0.05
      interval: 0.1
      max_wait: 30
      not_found_grace: 3
    status:
      path: status
      running: [starting, pending, processing]
      success: [success]
      failed: [failed, error]
    result:
      kind: file
      paths: ["result[0]", "full_response[0].url"]
    error: [error]
"""


async def test_models_show_availability_and_how_to_enable(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GENAPI_API_KEY", raising=False)
    monkeypatch.delenv("CONVEYOR_GENAPI_API_KEY", raising=False)
    async with serve() as client:
        models = (await client.get("/v1/models")).json()
        by_id = {m["id"]: m for m in models}
        assert by_id["local/finish"]["available"] is True
        genapi = by_id["genapi/z-image"]
        assert genapi["available"] is False
        assert genapi["enable_with"]
        assert genapi["enable_with"] in genapi["unavailable_reason"]
        one = (await client.get("/v1/models/genapi/z-image")).json()
        assert one["id"] == "genapi/z-image"
        assert one["spec"]["defaults"]["width"] == 992
        missing = await client.get("/v1/models/nope/nothing")
        assert missing.status_code == 404
        assert missing.json()["error"] == "MODEL_NOT_FOUND"
        images = (await client.get("/v1/models", params={"kind": "image"})).json()
        assert images
        assert all(m["kind"] == "image" for m in images)
        providers = {p["name"]: p for p in (await client.get("/v1/providers")).json()}
        assert providers["genapi"]["health"]["circuit"] == "closed"
        assert providers["local"]["type"] == "local"
        recipes = {r["name"] for r in (await client.get("/v1/recipes")).json()}
        assert {"model", "image-finish"} <= recipes


async def test_a_provider_added_over_http_is_callable_at_once(serve: Serve) -> None:
    async with await start_simulator(SimConfig(latency_scale=0.0)) as sim:
        async with serve(simulate=True, simulator_url=sim.base_url) as client:
            added = await client.post(
                "/v1/providers", content=NEW_PROVIDER, headers={"Content-Type": "application/yaml"}
            )
            assert added.status_code == 201, added.text
            assert added.json()["models"] == ["acme/painter"]
            assert added.json()["created"] is True
            assert added.json()["stored"] is True
            model = (await client.get("/v1/models/acme/painter")).json()
            assert model["available"] is True
            assert model["simulated"] is True
            # No restart: a job runs on the new model at once.
            job = (
                await client.post(
                    "/v1/jobs",
                    json={"model": "acme/painter", "items": [{"prompt": "a red cube"}], "wait": 30},
                )
            ).json()
            assert job["status"] == "completed", job
            [item] = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
            [file] = item["output"]["files"]
            assert file["mime_type"] == "image/png"

            broken = NEW_PROVIDER.replace("task_id: request_id", "task_id: 12")
            refused = await client.put(
                "/v1/providers/acme", content=broken, headers={"Content-Type": "text/yaml"}
            )
            assert refused.status_code == 422
            assert refused.json()["error"] == "INVALID_PROVIDER_SPEC"
            assert refused.json()["details"]["errors"] == [
                "models[0] acme/painter: submit.task_id: a path must be a string like "
                "'data.id', not int"
            ]
            # Nothing half-written: the stored spec still works.
            assert (await client.get("/v1/models/acme/painter")).status_code == 200
        counters = sim.counters()
    assert counters["submissions"]["genapi"] == {"z-image": 1}
    assert counters["wrong_endpoints_total"] == 0
