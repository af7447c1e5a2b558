"""Provider callbacks wired into the engine, over real HTTP with the simulator calling back.

A step whose model declares a callback sends its signed per-step URL with the task, then
polls only every safety interval (4 × the poll interval). When the simulator's task ends it
calls the URL; Conveyor verifies it and wakes the step, which polls once and finishes —
before the slow poll was due. Forged, expired, late, replayed and misdirected callbacks are
refused with the right status and change nothing: no poll happens, the job stays as it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from conveyor.providers.callbacks import callback_url
from tests.integration.providers.callback_stack import (
    KIE_HMAC_KEY,
    SECRETS,
    Stack,
    eventually,
    open_stack,
    until,
)

URL_SECRET = "test-secret"  # fast_settings' CONVEYOR_SECRET_KEY


@pytest.fixture(autouse=True)
def callback_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The providers' signing secrets, as an operator configures them."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


async def start_job(stack: Stack, model: str, item: dict[str, Any]) -> str:
    answer = await stack.http.post("/v1/jobs", json={"model": model, "items": [item]})
    assert answer.status_code in (200, 201, 202), answer.text
    job_id: str = answer.json()["id"]
    return job_id


async def finished(stack: Stack, job_id: str) -> dict[str, Any] | None:
    job = await stack.job(job_id)
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def kie_signed(task_id: str, timestamp: int, key: str = KIE_HMAC_KEY) -> dict[str, str]:
    mac = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
    return {
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": base64.b64encode(mac.digest()).decode(),
    }


def kie_body(task_id: str) -> bytes:
    return json.dumps({"code": 200, "msg": "done", "data": {"taskId": task_id}}).encode()


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            url, content=body, headers={"Content-Type": "application/json", **headers}
        )


def refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code, answer.text


async def test_a_kie_callback_finishes_the_step_long_before_the_safety_poll(
    database_url: str, tmp_path: Path
) -> None:
    async with open_stack(database_url, tmp_path / "data") as stack:
        job_id = await start_job(stack, "kie/seedream-4.5", {"prompt": "a lighthouse at dawn"})
        await until(lambda: stack.clock.sleepers == 1)  # submitted; the step pauses
        task = stack.task("kie")
        sent = json.loads(task.extra["param"])
        assert sent["callBackUrl"].startswith(f"{stack.base_url}/v1/callbacks/kie/")
        pause = stack.clock.sleeps[-1]
        # The safety net: 4 × Kie's 5 s interval (±10 % jitter), not the 2 s first poll.
        assert 18 <= pause <= 22
        assert stack.polls(task) == 0
        started = stack.clock.monotonic()

        stack.clock.advance(task.latency)  # 8 s: the task ends and Kie calls back
        job = await eventually(lambda: finished(stack, job_id))

        assert job["status"] == "completed", job
        assert stack.clock.monotonic() - started == task.latency < pause
        assert stack.polls(task) == 1  # the one poll the callback asked for
        (delivery,) = stack.sim.state.deliveries
        assert delivery.status == 200, delivery.answer
        assert json.loads(delivery.answer)["action"] == "woken"
        assert "X-Webhook-Signature" in delivery.headers
        [item] = (await stack.http.get(f"/v1/jobs/{job_id}/items")).json()["data"]
        assert item["output"]["files"][0]["mime_type"].startswith("image/")


async def test_forged_late_replayed_and_misdirected_callbacks_change_nothing(
    database_url: str, tmp_path: Path
) -> None:
    async with open_stack(database_url, tmp_path / "data") as stack:
        job_id = await start_job(stack, "kie/seedream-4.5", {"prompt": "a red bicycle"})
        await until(lambda: stack.clock.sleepers == 1)
        task = stack.task("kie")
        url = json.loads(task.extra["param"])["callBackUrl"]
        _, _, _, provider, step_run_id, expires, signature = urlsplit(url).path.split("/")
        now = int(stack.clock.timestamp())
        body = kie_body(task.id)
        base = url.removesuffix(f"/{signature}")

        refused(
            await post(f"{base}/{'A' * 43}", body, kie_signed(task.id, now)), 401, "CALLBACK_FORGED"
        )
        expired = callback_url(
            stack.base_url, URL_SECRET, provider="kie", step_run_id=step_run_id, expires=now - 1
        )
        refused(await post(expired, body, kie_signed(task.id, now)), 401, "CALLBACK_EXPIRED")
        refused(await post(url, body, {}), 401, "CALLBACK_FORGED")  # no Kie signature
        wrong_key = kie_signed(task.id, now, key="not-the-hmac-key")
        refused(await post(url, body, wrong_key), 401, "CALLBACK_FORGED")
        refused(await post(url, body, kie_signed(task.id, now - 600)), 401, "CALLBACK_LATE")
        other = "0" * 32
        refused(
            await post(url, kie_body(other), kie_signed(other, now)), 409, "CALLBACK_WRONG_TASK"
        )
        unknown = callback_url(
            stack.base_url,
            URL_SECRET,
            provider="kie",
            step_run_id=str(uuid.uuid4()),
            expires=now + 600,
        )
        refused(await post(unknown, body, kie_signed(task.id, now)), 404, "CALLBACK_UNKNOWN_STEP")
        refused(await post(url, b"not json", kie_signed(task.id, now)), 400, "CALLBACK_UNREADABLE")

        # Nothing changed: no poll, the step still waits, the job still runs.
        assert stack.polls(task) == 0
        assert stack.clock.sleepers == 1
        assert (await stack.job(job_id))["status"] == "processing"
        assert provider == "kie"
        assert int(expires) > now

        stack.clock.advance(task.latency)
        job = await eventually(lambda: finished(stack, job_id))
        assert job["status"] == "completed"
        (delivery,) = stack.sim.state.deliveries
        replay = await post(delivery.url, delivery.body, delivery.headers)
        refused(replay, 409, "CALLBACK_REPLAYED")
        # A fresh, valid call (signed a second later) for the finished step is ignored.
        later = int(stack.clock.timestamp()) + 1
        ignored = await post(url, body, kie_signed(task.id, later))
        assert ignored.status_code == 200, ignored.text
        assert ignored.json()["action"] == "ignored"
        assert stack.polls(task) == 1


async def test_replicate_webhooks_are_checked_as_standard_webhooks(
    database_url: str, tmp_path: Path
) -> None:
    # Longer than Replicate's "Prefer: wait=25": the create answers "processing".
    sim = {"protocols": {"replicate": {"latency_min": 40, "latency_max": 40}}}
    async with open_stack(database_url, tmp_path / "data", sim=sim) as stack:
        job_id = await start_job(stack, "replicate/flux-schnell", {"prompt": "a fox"})
        await until(lambda: stack.clock.sleepers == 1)  # the create call is held
        stack.clock.advance(25)
        await until(lambda: stack.clock.sleepers == 1 and bool(stack.clock.sleeps[-1] > 7))
        task = stack.task("replicate")
        assert task.extra.get("version")
        stack.clock.advance(15)
        job = await eventually(lambda: finished(stack, job_id))
        assert job["status"] == "completed"
        await until(
            lambda: (
                bool(stack.sim.state.deliveries)
                and stack.sim.state.deliveries[0].status is not None
            )
        )
        (delivery,) = stack.sim.state.deliveries
        assert delivery.status == 200, delivery.answer
        assert delivery.headers["webhook-signature"].startswith("v1,")
        assert json.loads(delivery.body)["status"] == "succeeded"

        refused(await post(delivery.url, delivery.body, delivery.headers), 409, "CALLBACK_REPLAYED")
        tampered = delivery.body.replace(b'"succeeded"', b'"failed"')
        refused(await post(delivery.url, tampered, delivery.headers), 401, "CALLBACK_FORGED")


async def test_fal_webhooks_wake_the_step_with_the_url_token_alone(
    database_url: str, tmp_path: Path
) -> None:
    sim = {"protocols": {"fal": {"latency_min": 5, "latency_max": 5}}}
    async with open_stack(database_url, tmp_path / "data", sim=sim) as stack:
        buffer = io.BytesIO()
        Image.new("RGB", (32, 24), (10, 120, 200)).save(buffer, "PNG")
        upload = await stack.http.post(
            "/v1/assets", files={"file": ("product.png", buffer.getvalue(), "image/png")}
        )
        assert upload.status_code == 201, upload.text
        job_id = await start_job(
            stack, "fal/birefnet", {"image": {"asset_id": upload.json()["id"]}}
        )
        await until(lambda: stack.clock.sleepers == 1)
        task = stack.task("fal")
        assert stack.clock.sleeps[-1] >= 0.9 * 4 * 2  # 4 × fal's 2 s interval
        stack.clock.advance(task.latency)
        job = await eventually(lambda: finished(stack, job_id))
        assert job["status"] == "completed", job
        assert stack.polls(task) == 1
        (delivery,) = stack.sim.state.deliveries
        assert json.loads(delivery.answer)["action"] == "woken"
        assert json.loads(delivery.body)["status"] == "OK"
        refused(await post(delivery.url, delivery.body, delivery.headers), 409, "CALLBACK_REPLAYED")
