"""Providers calling back: when a task ends, the simulator POSTs to its callback URL.

A protocol that documents callbacks takes the URL at submission — Kie ``callBackUrl`` in the
createTask body, Replicate ``webhook`` in the prediction body (only if
``webhook_events_filter`` is absent or holds ``completed``), fal the ``fal_webhook`` query
parameter — and ``schedule``s a delivery. The delivery watches the simulator's clock until
the task ends (a ``ManualClock`` in tests: the test decides when; a delivery never moves the
clock itself, not even one whose sleeps advance it), then sends what that provider sends:

* Kie: ``{code, msg, data}`` with ``data`` as ``recordInfo`` shows it; with
  ``kie_webhook_hmac_key`` set, ``X-Webhook-Timestamp`` and ``X-Webhook-Signature`` =
  base64(HMAC-SHA256(``taskId.timestamp``)) (docs.kie.ai, "Webhook Security Verification").
* Replicate: the prediction; with ``replicate_webhook_secret`` (``whsec_`` + base64) set, the
  Standard Webhooks headers ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` =
  ``v1,`` base64(HMAC-SHA256(``id.timestamp.body``)). Only the ``completed`` event is sent.
* fal: ``{request_id, gateway_request_id, status: OK|ERROR, payload, error?}``, unsigned
  (fal's ED25519 signature is not simulated).

Signing here is written from the providers' documentation, apart from Conveyor's own
verification code, so a mistake in one is not mirrored in the other. Every delivery is kept
in ``SimState.deliveries`` (and shown at ``GET /_sim/callbacks``), so a test can replay one
or send a forged copy. One attempt per task: a receiver that fails it is left to its polling.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

import aiohttp

from conveyor.core.clock import SystemClock
from conveyor.sim.state import Delivery, SimState, SimTask

__all__ = [
    "BuildCallback",
    "is_callback_url",
    "json_body",
    "kie_headers",
    "schedule",
    "standard_webhook_headers",
]

BuildCallback = Callable[[], Awaitable[tuple[dict[str, str], bytes]]]
"""Makes a delivery's headers and body when it is sent (the task has ended by then)."""

_TIMEOUT = aiohttp.ClientTimeout(total=30)
# How often (real seconds) a delivery looks at a manual clock.
_WATCH_INTERVAL = 0.01


def json_body(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def is_callback_url(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def schedule(state: SimState, task: SimTask, url: str, build: BuildCallback) -> None:
    """Deliver the task's callback to ``url`` once the clock reaches the task's end."""

    async def deliver() -> None:
        await _until_ended(state, task)
        headers, body = await build()
        delivery = Delivery(task.id, url, headers, body)
        state.deliveries.append(delivery)
        try:
            async with (
                aiohttp.ClientSession(timeout=_TIMEOUT) as session,
                session.post(
                    url, data=body, headers={"Content-Type": "application/json", **headers}
                ) as answer,
            ):
                delivery.status = answer.status
                delivery.answer = (await answer.text())[:2000]
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"

    state.start_delivery(deliver(), task.id)


async def _until_ended(state: SimState, task: SimTask) -> None:
    real_time = isinstance(state.clock, SystemClock)
    while not state.phase(task).terminal:
        remaining = task.ready_at - state.now()
        # Watched, not slept on: a test's clock moves only when the test (or the client
        # under test) says so.
        await asyncio.sleep(min(remaining, 1.0) if real_time else _WATCH_INTERVAL)


def kie_headers(state: SimState, task_id: str) -> dict[str, str]:
    """Kie's signature headers, when the run has a webhook HMAC key."""
    key = state.config.kie_webhook_hmac_key
    if not key:
        return {}
    timestamp = str(int(state.clock.timestamp()))
    mac = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
    return {
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": base64.b64encode(mac.digest()).decode(),
    }


def standard_webhook_headers(state: SimState, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers (Replicate), when the run has a ``whsec_`` secret."""
    secret = state.config.replicate_webhook_secret
    if not secret:
        return {}
    webhook_id = f"msg_{state.token(24)}"
    timestamp = str(int(state.clock.timestamp()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }
