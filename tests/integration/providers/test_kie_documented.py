"""Kie.ai as its documentation describes it, over real HTTP against the simulator: the
states, ``resultJson`` as a JSON string, and a task that moderation refuses after it looked
fine — which must end failed at once with Kie's failCode and failMsg, never poll on."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from sim_support import (
    Checkpoints,
)

from conveyor.core.clock import ManualClock
from conveyor.execution.files import ItemFiles
from conveyor.providers.base import FileInput, ModelCall
from conveyor.providers.errors import PermanentProviderError
from conveyor.providers.http import HttpOverrides, build_http_adapters
from conveyor.providers.spec import ProviderSpec
from conveyor.sim import RunningSimulator, SimConfig, start_simulator
from tests.integration.conftest import Serve

AUTH = {"Authorization": "Bearer sim-key"}
SEEDANCE = "bytedance/seedance-1.5-pro"
MODERATED = {"models": {f"kie/{SEEDANCE}": {"kie_moderation_rate": 1}}}
PHOTO = FileInput(url="https://photos.example/first-frame.jpg")


async def record_info(
    http: aiohttp.ClientSession, simulator: RunningSimulator, task_id: str
) -> dict[str, Any]:
    async with http.get(
        f"{simulator.base_urls['kie']}/api/v1/jobs/recordInfo",
        params={"taskId": task_id},
        headers=AUTH,
    ) as answer:
        assert answer.status == 200
        body: dict[str, Any] = await answer.json()
    assert body["code"] == 200
    return body["data"]


async def create_task(http: aiohttp.ClientSession, simulator: RunningSimulator, model: str) -> str:
    body = {"model": model, "input": {"prompt": "a wave", "input_urls": [PHOTO.url]}}
    async with http.post(
        f"{simulator.base_urls['kie']}/api/v1/jobs/createTask", json=body, headers=AUTH
    ) as answer:
        created = await answer.json()
    task_id: str = created["data"]["taskId"]
    return task_id


async def states_until_done(
    http: aiohttp.ClientSession, simulator: RunningSimulator, clock: ManualClock, task_id: str
) -> tuple[list[str], dict[str, Any]]:
    states: list[str] = []
    while True:
        data = await record_info(http, simulator, task_id)
        if not states or states[-1] != data["state"]:
            states.append(data["state"])
        if data["state"] in ("success", "fail"):
            return states, data
        clock.advance(0.5)


async def test_states_and_result_json_as_documented(
    simulator: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    task_id = await create_task(session, simulator, SEEDANCE)
    states, data = await states_until_done(session, simulator, clock, task_id)
    assert states == ["waiting", "queuing", "generating", "success"]
    assert isinstance(data["resultJson"], str)
    urls = json.loads(data["resultJson"])["resultUrls"]
    assert len(urls) == 1
    assert urls[0].startswith(simulator.base_url)
    assert data["failCode"] == ""
    assert data["failMsg"] == ""


async def test_the_simulator_refuses_by_moderation_after_generating(
    simulator: RunningSimulator, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    simulator.update_config(MODERATED)
    task_id = await create_task(session, simulator, SEEDANCE)
    states, data = await states_until_done(session, simulator, clock, task_id)
    assert states == ["waiting", "queuing", "generating", "fail"]
    assert data["failCode"] == "400"
    assert "flagged by the content moderation" in data["failMsg"]
    assert data["resultJson"] == ""
    # Only the model it was asked for.
    other = await create_task(session, simulator, "seedream/4.5-text-to-image")
    states, _ = await states_until_done(session, simulator, clock, other)
    assert states[-1] == "success"


async def test_a_moderated_task_fails_at_once_with_fail_code_and_fail_msg(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    simulator.update_config(MODERATED)
    overrides = HttpOverrides(simulate=True, simulator_url=simulator.base_url)
    adapters = build_http_adapters([shipped_specs["kie"]], session, overrides, clock=clock)
    adapter = next(a for a in adapters if a.model_id == "kie/seedance-1.5-pro")
    call = ModelCall(adapter.model_id, {"prompt": "waves", "image": PHOTO}, "run-1", files)
    with pytest.raises(PermanentProviderError) as caught:
        await adapter.run(call, resume=None, checkpoint=Checkpoints())
    message = caught.value.message
    assert message == (
        "Kie.ai: kie/seedance-1.5-pro failed: Your content was flagged by the content "
        "moderation system (failCode 400)"
    )
    assert caught.value.code == "PROVIDER_TASK_FAILED"
    (task,) = simulator.state.tasks.values()
    # It polled through the "generating" phase and stopped at the first "fail": the task
    # took at most 8 s (the fixture's latency), the poll budget is 900 s.
    polls = simulator.counters()["polls"][task.id]
    assert 2 <= polls <= 6
    assert sum(clock.sleeps) < task.latency + 10
    assert files.stored == []


async def test_the_item_error_carries_fail_code_and_fail_msg(serve: Serve) -> None:
    config = SimConfig(latency_scale=0.0, **MODERATED)
    async with (
        await start_simulator(config) as sim,
        serve(simulate=True, simulator_url=sim.base_url) as client,
    ):
        job = (
            await client.post(
                "/v1/jobs",
                json={
                    "model": "kie/seedance-1.5-pro",
                    "items": [{"prompt": "waves", "image": {"url": PHOTO.url}}],
                    "wait": 30,
                },
            )
        ).json()
        assert job["status"] == "failed", job
        [item] = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
    assert item["status"] == "failed"
    assert "flagged by the content moderation system (failCode 400)" in item["error"]
    assert sim.counters()["submissions_total"] == 1
