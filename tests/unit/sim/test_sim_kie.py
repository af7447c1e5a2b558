"""Kie.ai protocol (seed 003): createTask, recordInfo, states and error styles."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import pytest
from PIL import Image

from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator

AUTH = {"Authorization": "Bearer sim-key"}
SEED_VIDEO_BODY = {
    "model": "bytedance/seedance-1.5-pro",
    "input": {
        "prompt": "Two people arm wrestling in a vintage room, dynamic movement, cinematic",
        "input_urls": ["https://example.com/123.jpg"],
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": "8",
    },
}
IMAGE_BODY = {
    "model": "seedream/4.5-edit",
    "callBackUrl": "https://example.com/callback",
    "input": {"prompt": "a red bicycle", "aspect_ratio": "1:1"},
}


async def create(http: aiohttp.ClientSession, sim: RunningSimulator, body: dict[str, Any]) -> str:
    async with http.post(
        f"{sim.base_urls['kie']}/api/v1/jobs/createTask", json=body, headers=AUTH
    ) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["code"] == 200
    assert answer["msg"] == "success"
    task_id: str = answer["data"]["taskId"]
    return task_id


async def record(
    http: aiohttp.ClientSession, sim: RunningSimulator, task_id: str
) -> tuple[int, dict[str, Any]]:
    async with http.get(
        f"{sim.base_urls['kie']}/api/v1/jobs/recordInfo",
        params={"taskId": task_id},
        headers=AUTH,
    ) as response:
        return response.status, await response.json()


async def test_states_and_result_json(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    task_id = await create(http, sim, IMAGE_BODY)
    states = []
    for _ in range(3):
        _, answer = await record(http, sim, task_id)
        states.append(answer["data"]["state"])
        clock.advance(2)
    assert states == ["waiting", "queuing", "generating"]
    assert answer["data"]["resultJson"] == ""
    assert answer["data"]["completeTime"] is None
    clock.advance(6)
    status, answer = await record(http, sim, task_id)
    assert status == 200
    assert answer["code"] == 200
    data = answer["data"]
    assert data["state"] == "success"
    assert data["taskId"] == task_id
    assert data["model"] == "seedream/4.5-edit"
    assert json.loads(data["param"]) == IMAGE_BODY
    assert data["failCode"] == ""
    assert data["failMsg"] == ""
    assert data["costTime"] == 10_000
    assert data["completeTime"] - data["createTime"] == 10_000
    urls = json.loads(data["resultJson"])["resultUrls"]
    async with http.get(urls[0]) as response:
        image = Image.open(io.BytesIO(await response.read()))
    assert image.size == (1024, 1024)


async def test_video_models_give_an_animation(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    task_id = await create(http, sim, SEED_VIDEO_BODY)
    clock.advance(10)
    _, answer = await record(http, sim, task_id)
    url = json.loads(answer["data"]["resultJson"])["resultUrls"][0]
    async with http.get(url) as response:
        assert response.content_type == "image/gif"
        animation = Image.open(io.BytesIO(await response.read()))
    assert getattr(animation, "n_frames", 1) > 1
    width, height = animation.size
    assert width > height  # 16:9


async def test_failure_sets_fail_code_and_message(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"models": {"kie/seedream/4.5-edit": {"failure_rate": 1.0}}})
    task_id = await create(http, sim, IMAGE_BODY)
    other_id = await create(http, sim, SEED_VIDEO_BODY)
    clock.advance(10)
    _, failed = await record(http, sim, task_id)
    _, fine = await record(http, sim, other_id)
    assert failed["data"]["state"] == "fail"
    assert failed["data"]["failCode"]
    assert failed["data"]["failMsg"]
    assert failed["data"]["resultJson"] == ""
    assert fine["data"]["state"] == "success"


async def test_no_balance_is_402_insufficient_credits(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{sim.base_urls['kie']}/api/v1/jobs/createTask",
        json=IMAGE_BODY,
        headers={"Authorization": "Bearer sim-no-balance"},
    ) as response:
        assert response.status == 402
        answer = await response.json()
    assert answer == {"code": 402, "msg": "Insufficient Credits", "data": None}


async def test_errors_can_come_with_http_200(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config({"protocols": {"kie": {"kie_errors_as_http_200": True}}})
    async with http.post(
        f"{sim.base_urls['kie']}/api/v1/jobs/createTask",
        json=IMAGE_BODY,
        headers={"Authorization": "Bearer nope"},
    ) as response:
        assert response.status == 200
        assert (await response.json())["code"] == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [({"input": {"prompt": "x"}}, "model"), ({"model": "seedream/4.5-edit"}, "input")],
)
async def test_invalid_create_is_422(
    sim: RunningSimulator, http: aiohttp.ClientSession, body: dict[str, Any], message: str
) -> None:
    async with http.post(
        f"{sim.base_urls['kie']}/api/v1/jobs/createTask", json=body, headers=AUTH
    ) as response:
        assert response.status == 422
        assert message in (await response.json())["msg"]


async def test_unknown_and_missing_task_ids(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    status, answer = await record(http, sim, "0" * 32)
    assert (status, answer["code"]) == (404, 404)
    status, answer = await record(http, sim, "")
    assert status == 422


async def test_not_found_polls_apply(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.update_config({"protocols": {"kie": {"not_found_polls": 1}}})
    task_id = await create(http, sim, IMAGE_BODY)
    assert (await record(http, sim, task_id))[0] == 404
    assert (await record(http, sim, task_id))[0] == 200
