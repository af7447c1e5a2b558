"""Replicate protocol: create (three ways), poll, Prefer: wait, cancel, output shapes."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
from PIL import Image

from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator

AUTH = {"Authorization": "Bearer sim-key"}


def root(sim: RunningSimulator) -> str:
    return f"{sim.base_urls['replicate']}/v1"


async def create(
    http: aiohttp.ClientSession,
    sim: RunningSimulator,
    *,
    headers: dict[str, str] | None = None,
    model: str = "black-forest-labs/flux-schnell",
    inputs: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with http.post(
        f"{root(sim)}/models/{model}/predictions",
        json={"input": inputs or {"prompt": "an owl", "width": 64, "height": 48}},
        headers={**AUTH, **(headers or {})},
    ) as response:
        return response.status, await response.json(), response


async def get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] = AUTH
) -> tuple[int, dict[str, Any]]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_create_poll_and_download(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    status, prediction, response = await create(http, sim)
    assert status == 201
    assert prediction["status"] == "starting"
    assert prediction["output"] is None
    assert prediction["model"] == "black-forest-labs/flux-schnell"
    assert response.headers["Location"] == prediction["urls"]["get"]
    assert prediction["urls"]["cancel"] == prediction["urls"]["get"] + "/cancel"
    clock.advance(5)
    _, running = await get(http, prediction["urls"]["get"])
    assert running["status"] == "processing"
    assert running["started_at"] is not None
    assert running["completed_at"] is None
    clock.advance(5)
    _, done = await get(http, prediction["urls"]["get"])
    assert done["status"] == "succeeded"
    assert done["completed_at"] is not None
    assert done["metrics"]["predict_time"] == pytest.approx(7.0)
    assert isinstance(done["output"], list)
    async with http.get(done["output"][0]) as download:
        assert Image.open(io.BytesIO(await download.read())).size == (64, 48)
    assert sim.counters()["polls"] == {prediction["id"]: 2}


async def test_create_by_version_reference(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{root(sim)}/predictions",
        json={"version": "stability-ai/sdxl:abc123", "input": {"prompt": "x"}},
        headers=AUTH,
    ) as response:
        assert response.status == 201
        prediction = await response.json()
    assert (prediction["model"], prediction["version"]) == ("stability-ai/sdxl", "abc123")
    assert sim.counters()["submissions"] == {"replicate": {"stability-ai/sdxl": 1}}


async def test_create_without_version_is_refused(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{root(sim)}/predictions", json={"input": {"prompt": "x"}}, headers=AUTH
    ) as response:
        assert response.status == 422
        problem = await response.json()
    assert problem["status"] == 422
    assert "version" in problem["detail"]


async def test_prefer_wait_holds_until_done(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    status, prediction, _ = await create(http, sim, headers={"Prefer": "wait"})
    assert status == 201
    assert prediction["status"] == "succeeded"
    assert prediction["output"]
    assert clock.monotonic() == pytest.approx(1010.0)


async def test_prefer_wait_n_gives_up_after_n_seconds(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, prediction, _ = await create(http, sim, headers={"Prefer": "wait=4"})
    assert prediction["status"] == "processing"
    assert prediction["output"] is None
    assert clock.monotonic() == pytest.approx(1004.0)


async def test_without_prefer_the_create_returns_at_once(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, prediction, _ = await create(http, sim)
    assert prediction["status"] == "starting"
    assert clock.monotonic() == pytest.approx(1000.0)


async def test_cancel_running_then_finished(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, first, _ = await create(http, sim)
    _, second, _ = await create(http, sim)
    clock.advance(5)
    async with http.post(first["urls"]["cancel"], headers=AUTH) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "canceled"
    clock.advance(10)
    _, after = await get(http, first["urls"]["get"])
    assert after["status"] == "canceled"
    assert after["output"] is None
    async with http.post(second["urls"]["cancel"], headers=AUTH) as response:
        assert (await response.json())["status"] == "succeeded"
    assert sim.counters()["cancels"] == {first["id"]: 1, second["id"]: 1}


async def test_output_as_one_string(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"replicate_output": "string", "encoding": "data_url"})
    _, prediction, _ = await create(http, sim)
    clock.advance(10)
    _, done = await get(http, prediction["urls"]["get"])
    assert isinstance(done["output"], str)
    assert done["output"].startswith("data:image/png;base64,")


async def test_failed_prediction_carries_the_error(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"failure_rate": 1.0, "failure_message": "CUDA out of memory"})
    _, prediction, _ = await create(http, sim)
    clock.advance(10)
    _, done = await get(http, prediction["urls"]["get"])
    assert (done["status"], done["error"], done["output"]) == ("failed", "CUDA out of memory", None)


async def test_idempotency_keys_are_counted(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    await create(http, sim, headers={"Idempotency-Key": "step-1"})
    await create(http, sim, headers={"Idempotency-Key": "step-1"})
    await create(http, sim, headers={"Idempotency-Key": "step-2"})
    counters = sim.counters()
    assert counters["idempotency_keys"] == {"step-1": 2, "step-2": 1}
    assert counters["submissions_total"] == 3


async def test_token_scheme_is_accepted_and_bad_keys_are_problems(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    status, _, _ = await create(http, sim, headers={"Authorization": "Token sim-key"})
    assert status == 201
    status, problem, response = await create(
        http, sim, headers={"Authorization": "Bearer sim-no-balance"}
    )
    assert status == 402
    assert response.content_type == "application/problem+json"
    assert problem["status"] == 402
    assert problem["detail"]


async def test_unknown_prediction_is_404(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    status, problem = await get(http, f"{root(sim)}/predictions/doesnotexist")
    assert status == 404
    assert problem["detail"]
