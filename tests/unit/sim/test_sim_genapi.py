"""gen-api protocol (seed 001): submit, poll, result shapes, and every quirk."""

from __future__ import annotations

import base64
import io
from typing import Any

import aiohttp
import pytest
from PIL import Image

from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator

AUTH = {"Authorization": "Bearer sim-key"}
SEED_BODY = {
    "translate_input": True,
    "prompt": "Гиперреалистичный портрет старейшины племени",
    "width": 992,
    "height": 992,
    "num_images": 1,
    "model": "turbo",
    "output_format": "png",
    "num_inference_steps": 8,
    "enable_safety_checker": True,
    "acceleration": "high",
    "enable_prompt_expansion": False,
}


def api(sim: RunningSimulator) -> str:
    return f"{sim.base_urls['genapi']}/api/v1"


async def submit(
    http: aiohttp.ClientSession, sim: RunningSimulator, body: dict[str, Any] | None = None
) -> int:
    async with http.post(
        f"{api(sim)}/networks/z-image", json=body or SEED_BODY, headers=AUTH
    ) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["status"] == "starting"
    assert isinstance(answer["request_id"], int)
    return int(answer["request_id"])


async def poll(
    http: aiohttp.ClientSession, sim: RunningSimulator, request_id: int
) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{api(sim)}/request/get/{request_id}", headers=AUTH) as response:
        return response.status, await response.json()


async def test_happy_path_walks_the_statuses_and_serves_a_real_png(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    request_id = await submit(http, sim)
    seen = []
    for _ in range(4):
        status, answer = await poll(http, sim, request_id)
        assert status == 200
        seen.append(answer["status"])
        clock.advance(2)
    assert seen == ["starting", "pending", "processing", "processing"]
    clock.advance(3)
    status, answer = await poll(http, sim, request_id)
    assert answer["status"] == "success"
    assert "full_response" not in answer
    async with http.get(answer["result"][0]) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        image = Image.open(io.BytesIO(await response.read()))
    assert image.format == "PNG"
    assert image.size == (992, 992)
    counters = sim.counters()
    assert counters["submissions"] == {"genapi": {"z-image": 1}}
    assert counters["polls"] == {str(request_id): 5}
    assert counters["downloads"] == {f"{request_id}-0.png": 1}
    task = counters["tasks"][str(request_id)]
    assert task["done_at"] == pytest.approx(1010.0)
    assert task["done_to_poll_lag"] == pytest.approx(1.0)


async def test_full_response_shape(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"result_field": "full_response"})
    request_id = await submit(http, sim)
    clock.advance(10)
    _, answer = await poll(http, sim, request_id)
    assert "result" not in answer
    assert answer["full_response"][0]["url"].startswith(sim.base_url + "/files/")


@pytest.mark.parametrize("encoding", ["data_url", "base64"])
async def test_inline_encodings_decode_to_the_requested_size(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock, encoding: str
) -> None:
    sim.update_config({"encoding": encoding})
    request_id = await submit(http, sim, {**SEED_BODY, "width": 320, "height": 200})
    clock.advance(10)
    _, answer = await poll(http, sim, request_id)
    reference: str = answer["result"][0]
    if encoding == "data_url":
        assert reference.startswith("data:image/png;base64,")
        reference = reference.partition(",")[2]
    else:
        assert not reference.startswith(("data:", "http"))
    image = Image.open(io.BytesIO(base64.b64decode(reference)))
    assert image.size == (320, 200)


async def test_size_is_capped_keeping_the_aspect(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"max_image_side": 100})
    request_id = await submit(http, sim, {**SEED_BODY, "width": 2000, "height": 1000})
    clock.advance(10)
    _, answer = await poll(http, sim, request_id)
    async with http.get(answer["result"][0]) as response:
        image = Image.open(io.BytesIO(await response.read()))
    assert image.size == (100, 50)


async def test_first_polls_of_a_fresh_task_are_404(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"not_found_polls": 2, "latency_scale": 0})
    request_id = await submit(http, sim)
    statuses = [(await poll(http, sim, request_id))[0] for _ in range(3)]
    assert statuses == [404, 404, 200]
    counters = sim.counters()
    assert counters["not_found_polls"] == {"genapi": 2}
    assert counters["polls"][str(request_id)] == 3


@pytest.mark.parametrize(
    ("key", "status"), [("wrong", 401), ("sim-no-balance", 402), ("sim-forbidden", 403)]
)
async def test_keys_are_checked(
    sim: RunningSimulator, http: aiohttp.ClientSession, key: str, status: int
) -> None:
    async with http.post(
        f"{api(sim)}/networks/z-image",
        json=SEED_BODY,
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        assert response.status == status
        assert (await response.json())["error"]
    assert sim.counters()["auth_failures"] == {"genapi": {str(status): 1}}
    assert sim.counters()["submissions_total"] == 0


async def test_missing_key_is_401(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{api(sim)}/networks/z-image", json=SEED_BODY) as response:
        assert response.status == 401


@pytest.mark.parametrize(
    "path",
    [
        "networks/z-image/{id}",
        "networks/z-image/requests/{id}",
        "networks/z-image/status/{id}",
        "networks/z-image/result/{id}",
        "requests/{id}",
        "tasks/{id}",
    ],
)
async def test_wrong_poll_endpoints_from_the_seed_are_404_and_counted(
    sim: RunningSimulator, http: aiohttp.ClientSession, path: str
) -> None:
    request_id = await submit(http, sim)
    wrong = path.format(id=request_id)
    async with http.get(f"{api(sim)}/{wrong}", headers=AUTH) as response:
        assert response.status == 404
    counters = sim.counters()
    assert counters["wrong_endpoints"] == {f"GET /genapi/api/v1/{wrong}": 1}
    assert counters["wrong_endpoints_total"] == 1
    assert counters["polls"] == {}


async def test_get_on_the_submit_endpoint_counts_as_wrong(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api(sim)}/networks/z-image", headers=AUTH) as response:
        assert response.status == 405
    assert sim.counters()["wrong_endpoints_total"] == 1


async def test_failed_tasks_say_failed_or_error_with_a_message(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"failure_rate": 1.0, "failure_message": "NSFW content detected"})
    ids = [await submit(http, sim) for _ in range(2)]
    clock.advance(10)
    answers = [(await poll(http, sim, request_id))[1] for request_id in ids]
    assert {answer["status"] for answer in answers} == {"failed", "error"}
    assert all(answer["error"] == "NSFW content detected" for answer in answers)
    assert all("result" not in answer for answer in answers)


async def test_num_images_gives_that_many_distinct_results(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    request_id = await submit(http, sim, {**SEED_BODY, "num_images": 2, "width": 64, "height": 64})
    clock.advance(10)
    _, answer = await poll(http, sim, request_id)
    assert len(answer["result"]) == 2
    bodies = []
    for url in answer["result"]:
        async with http.get(url) as response:
            bodies.append(await response.read())
    assert bodies[0] != bodies[1]


async def test_missing_prompt_is_refused(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{api(sim)}/networks/z-image", json={"width": 992}, headers=AUTH
    ) as response:
        assert response.status == 422
    assert sim.counters()["submissions_total"] == 0


async def test_unknown_request_id_is_404(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    status, _ = await poll(http, sim, 1)
    assert status == 404
    assert sim.counters()["wrong_endpoints_total"] == 0


@pytest.mark.parametrize("result_field", ["result", "full_response"])
async def test_llm_networks_answer_text_derived_from_the_messages(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock, result_field: str
) -> None:
    sim.update_config({"result_field": result_field})
    body = {
        "messages": [
            {"role": "system", "content": "Describe the vehicle damage."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "additional_info: 2019 Tesla Model 3"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                ],
            },
        ]
    }
    async with http.post(f"{api(sim)}/networks/gpt-4o-mini", json=body, headers=AUTH) as response:
        request_id = (await response.json())["request_id"]
    clock.advance(10)
    _, answer = await poll(http, sim, request_id)
    assert answer["status"] == "success"
    if result_field == "result":
        text = answer["result"][0]
    else:
        text = answer["full_response"][0]["message"]["content"]
    assert "2019 Tesla Model 3" in text
    assert "1 image." in text
