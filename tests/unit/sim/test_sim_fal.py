"""fal.ai queue protocol: submit, status, result shapes, cancel, and Key auth."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
from PIL import Image

from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator

AUTH = {"Authorization": "Key sim-key"}


async def submit(
    http: aiohttp.ClientSession,
    sim: RunningSimulator,
    model_id: str,
    body: dict[str, Any],
    headers: dict[str, str] = AUTH,
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{sim.base_urls['fal']}/{model_id}", json=body, headers=headers) as r:
        return r.status, await r.json()


async def call(http: aiohttp.ClientSession, method: str, url: str) -> tuple[int, dict[str, Any]]:
    async with http.request(method, url, headers=AUTH) as response:
        return response.status, await response.json()


async def test_kontext_lora_round_trip(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    status, queued = await submit(
        http,
        sim,
        "fal-ai/flux-kontext-lora",
        {"prompt": "product on marble", "image_url": "https://example.com/p.png",
         "image_size": "landscape_4_3", "num_images": 2},
    )  # fmt: skip
    assert status == 200
    assert queued["status"] == "IN_QUEUE"
    base = f"{sim.base_urls['fal']}/fal-ai/flux-kontext-lora/requests/{queued['request_id']}"
    assert queued["response_url"] == base
    assert queued["status_url"] == f"{base}/status"
    assert queued["cancel_url"] == f"{base}/cancel"
    status, in_queue = await call(http, "GET", queued["status_url"])
    assert (status, in_queue["status"]) == (202, "IN_QUEUE")
    assert in_queue["queue_position"] >= 0
    status, early = await call(http, "GET", queued["response_url"])
    assert status == 400
    assert "progress" in early["detail"]
    clock.advance(5)
    status, running = await call(http, "GET", queued["status_url"])
    assert (status, running["status"]) == (202, "IN_PROGRESS")
    assert "queue_position" not in running
    clock.advance(5)
    status, completed = await call(http, "GET", queued["status_url"] + "?logs=1")
    assert (status, completed["status"]) == (200, "COMPLETED")
    assert completed["logs"]
    assert "error" not in completed
    assert completed["metrics"]["inference_time"] == pytest.approx(10.0)
    status, result = await call(http, "GET", queued["response_url"])
    assert status == 200
    assert len(result["images"]) == 2
    first = result["images"][0]
    assert (first["width"], first["height"], first["content_type"]) == (1024, 768, "image/png")
    async with http.get(first["url"]) as response:
        assert Image.open(io.BytesIO(await response.read())).size == (1024, 768)


async def test_sub_path_is_dropped_from_request_urls(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    _, queued = await submit(http, sim, "fal-ai/flux/dev", {"prompt": "x"})
    assert f"/fal/fal-ai/flux/requests/{queued['request_id']}" in queued["status_url"]
    status, _ = await call(http, "GET", queued["status_url"])
    assert status == 202
    assert sim.counters()["submissions"] == {"fal": {"fal-ai/flux/dev": 1}}


async def test_birefnet_returns_one_transparent_image(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, queued = await submit(
        http, sim, "fal-ai/birefnet", {"image_url": "https://example.com/p.png"}
    )
    clock.advance(10)
    _, result = await call(http, "GET", queued["response_url"])
    assert "images" not in result
    async with http.get(result["image"]["url"]) as response:
        image = Image.open(io.BytesIO(await response.read()))
    assert image.mode == "RGBA"
    alpha = image.getchannel("A")
    assert alpha.getextrema() == (0, 255)  # transparent background, opaque subject


async def test_cancel_in_queue_then_already_completed_then_not_found(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, queued = await submit(http, sim, "fal-ai/birefnet", {"image_url": "x"})
    status, answer = await call(http, "PUT", queued["cancel_url"])
    assert (status, answer["status"]) == (202, "CANCELLATION_REQUESTED")
    status, final = await call(http, "GET", queued["status_url"])
    assert (status, final["status"], final["error_type"]) == (200, "COMPLETED", "request_cancelled")
    status, _ = await call(http, "GET", queued["response_url"])
    assert status == 400
    status, answer = await call(http, "PUT", queued["cancel_url"])
    assert (status, answer["status"]) == (400, "ALREADY_COMPLETED")
    missing = queued["cancel_url"].replace(queued["request_id"], "0" * 8)
    status, answer = await call(http, "PUT", missing)
    assert (status, answer["status"]) == (404, "NOT_FOUND")
    assert sim.counters()["cancels"] == {queued["request_id"]: 2}


async def test_failed_request_reports_error_in_status_and_result(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"protocols": {"fal": {"failure_rate": 1.0}}})
    _, queued = await submit(http, sim, "fal-ai/flux-kontext-lora", {"prompt": "x"})
    clock.advance(10)
    status, final = await call(http, "GET", queued["status_url"])
    assert (status, final["status"], final["error_type"]) == (200, "COMPLETED", "runner_failed")
    status, result = await call(http, "GET", queued["response_url"])
    assert status == 422
    assert result["detail"] == final["error"]


async def test_keys_use_the_key_scheme_and_no_balance_is_403(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    status, answer = await submit(
        http, sim, "fal-ai/birefnet", {}, headers={"Authorization": "Key sim-no-balance"}
    )
    assert status == 403
    assert "balance" in answer["detail"]
    status, _ = await submit(http, sim, "fal-ai/birefnet", {}, headers={})
    assert status == 401
    # fal wants "Key"; a client sending Bearer gets the 401 the real queue gives.
    status, _ = await submit(
        http, sim, "fal-ai/birefnet", {}, headers={"Authorization": "Bearer sim-key"}
    )
    assert status == 401
    assert sim.counters()["auth_failures"] == {"fal": {"403": 1, "401": 2}}


async def test_post_to_a_request_url_counts_as_wrong_endpoint(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    _, queued = await submit(http, sim, "fal-ai/birefnet", {"image_url": "x"})
    async with http.post(queued["cancel_url"], headers=AUTH) as response:
        assert response.status == 405
    assert sim.counters()["wrong_endpoints_total"] == 1
    assert sim.counters()["submissions_total"] == 1


async def test_request_under_another_app_is_not_found(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    _, queued = await submit(http, sim, "fal-ai/birefnet", {"image_url": "x"})
    other = queued["status_url"].replace("fal-ai/birefnet", "fal-ai/flux")
    status, _ = await call(http, "GET", other)
    assert status == 404
