"""Replicate's predictions API (replicate.com/docs/reference/http, "Create a prediction").

``{sim}/replicate`` stands for ``https://api.replicate.com``. Create with ``POST
/v1/predictions`` (``version`` is ``owner/name``, ``owner/name:version`` or a version id),
``POST /v1/models/{owner}/{name}/predictions`` or ``POST
/v1/deployments/{owner}/{name}/predictions``; all answer 201 with the prediction and a
``Location`` header. ``Prefer: wait`` (60 s) or ``Prefer: wait=N`` (1–60) holds the create
call until the prediction ends or N seconds pass, then answers it as it stands. ``GET
/v1/predictions/{id}`` polls; ``POST /v1/predictions/{id}/cancel`` cancels (a finished
prediction is returned unchanged). Statuses: ``starting, processing, succeeded, failed,
canceled``; ``output`` is a list of file URLs or one string per ``replicate_output``; errors
are problem details ``{title, detail, status}``. Background-removal models (``…/remove-background``,
``…/rembg``) return an RGBA cut-out PNG of the input ``image`` when it came inline
(``images.cut_out``). A ``webhook`` gets the finished prediction (the ``completed`` event
only), signed per Standard Webhooks when the run has a ``replicate_webhook_secret``
(``conveyor.sim.callbacks``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from conveyor.sim import callbacks
from conveyor.sim.files import Where, file_reference, origin
from conveyor.sim.gate import (
    SimHTTPError,
    admit,
    fresh_task_not_found,
    idempotency_key,
    invalid,
    read_json_object,
)
from conveyor.sim.media import as_cutouts, media_kind_for, plan_outputs
from conveyor.sim.state import SIM_STATE, Phase, SimState, SimTask

PROTOCOL = "replicate"
ORIGIN_PATH = "/replicate"
_PREDICTIONS = f"{ORIGIN_PATH}/v1/predictions"
_MAX_WAIT_SECONDS = 60
# Replicate documents Bearer; older clients still send Token.
_SCHEMES = ("Bearer", "Token")
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    402: "Insufficient credit",
    403: "Forbidden",
    404: "Not found",
    422: "Input validation failed",
    429: "Too many requests",
    500: "Internal server error",
    504: "Gateway timeout",
}
_STATUS_WORDS = {
    Phase.QUEUED: "starting",
    Phase.RUNNING: "processing",
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
    Phase.CANCELED: "canceled",
}


def add_routes(app: web.Application) -> None:
    app.router.add_post(_PREDICTIONS, create_from_version)
    app.router.add_post(f"{ORIGIN_PATH}/v1/models/{{owner}}/{{name}}/predictions", create_for_model)
    app.router.add_post(
        f"{ORIGIN_PATH}/v1/deployments/{{owner}}/{{name}}/predictions", create_for_model
    )
    app.router.add_get(f"{_PREDICTIONS}/{{prediction_id}}", get_prediction)
    app.router.add_post(f"{_PREDICTIONS}/{{prediction_id}}/cancel", cancel_prediction)


def render_error(error: SimHTTPError, state: SimState) -> web.Response:
    return web.json_response(
        {
            "title": _TITLES.get(error.status, "Error"),
            "detail": error.message,
            "status": error.status,
        },
        status=error.status,
        headers=error.headers,
        content_type="application/problem+json",
    )


def _model_and_version(reference: str) -> tuple[str, str]:
    """``owner/name[:version]`` or a bare version id → (model, version id)."""
    if ":" in reference:
        model, _, version = reference.partition(":")
        return model, version
    if "/" in reference:
        return reference, hashlib.sha256(reference.encode()).hexdigest()
    return f"version/{reference[:12]}", reference


def _wait_seconds(prefer: str) -> float | None:
    """Seconds asked for by ``Prefer: wait`` / ``Prefer: wait=N``; None if not asked."""
    match = re.search(r"(?:^|[,;\s])wait(?:\s*=\s*(\d+))?(?:$|[,;\s])", prefer)
    if match is None:
        return None
    seconds = int(match[1]) if match[1] else _MAX_WAIT_SECONDS
    return float(min(_MAX_WAIT_SECONDS, max(1, seconds)))


async def create_from_version(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    body = await read_json_object(request, PROTOCOL)
    reference = body.get("version")
    if not isinstance(reference, str) or not reference:
        await admit(request, state, protocol=PROTOCOL, model=None, schemes=_SCHEMES)
        raise invalid(PROTOCOL, "version is required")
    model, version = _model_and_version(reference)
    return await _create(request, state, body, model, version)


async def create_for_model(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    body = await read_json_object(request, PROTOCOL)
    model = f"{request.match_info['owner']}/{request.match_info['name']}"
    return await _create(request, state, body, model, hashlib.sha256(model.encode()).hexdigest())


async def _create(
    request: web.Request, state: SimState, body: dict[str, Any], model: str, version: str
) -> web.Response:
    await admit(request, state, protocol=PROTOCOL, model=model, schemes=_SCHEMES)
    inputs = body.get("input")
    if not isinstance(inputs, dict):
        raise invalid(PROTOCOL, "input is required and must be an object")
    task_id = state.token(26)
    count = inputs.get("num_outputs", inputs.get("num_images", 1))
    outputs = plan_outputs(state.config, model, inputs, owner_id=task_id, count=count)
    if media_kind_for(model) == "cutout":
        outputs = as_cutouts(outputs, inputs.get("image"), state.config.max_image_side)
    task = state.submit(
        PROTOCOL,
        model,
        inputs,
        task_id=task_id,
        outputs=outputs,
        idempotency_key=idempotency_key(request),
        extra={"version": version},
    )
    webhook = body.get("webhook")
    events = body.get("webhook_events_filter")
    if callbacks.is_callback_url(webhook) and (
        not isinstance(events, list) or "completed" in events
    ):
        callbacks.schedule(state, task, webhook, _callback(state, task, origin(request, state)))
    wait = _wait_seconds(request.headers.get("Prefer", ""))
    if wait is not None:
        await _hold_until_done(state, task, wait)
        state.mark_seen(task)
    answer = await _prediction(request, state, task)
    return web.json_response(answer, status=201, headers={"Location": answer["urls"]["get"]})


def _callback(state: SimState, task: SimTask, here: str) -> callbacks.BuildCallback:
    async def build() -> tuple[dict[str, str], bytes]:
        body = callbacks.json_body(await _prediction(here, state, task))
        return callbacks.standard_webhook_headers(state, body), body

    return build


async def _hold_until_done(state: SimState, task: SimTask, seconds: float) -> None:
    deadline = state.now() + seconds
    while not state.phase(task).terminal:
        remaining = deadline - state.now()
        if remaining <= 0:
            return
        # Wake at least once a second so a cancel during the wait ends it.
        await state.sleep(min(task.ready_at - state.now(), remaining, 1.0))


async def get_prediction(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    task = await _find(request, state)
    polls = state.observe_poll(task)
    fresh_task_not_found(state, PROTOCOL, polls, state.behaviour(PROTOCOL, task.model))
    return web.json_response(await _prediction(request, state, task))


async def cancel_prediction(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    task = await _find(request, state)
    state.cancel(task)
    return web.json_response(await _prediction(request, state, task))


async def _find(request: web.Request, state: SimState) -> SimTask:
    task = state.find(PROTOCOL, request.match_info["prediction_id"])
    await admit(
        request, state, protocol=PROTOCOL, model=task.model if task else None, schemes=_SCHEMES
    )
    if task is None:
        raise SimHTTPError(404, "Not found.", code="not_found", protocol=PROTOCOL)
    return task


def _iso(task: SimTask, clock_time: float) -> str:
    moment = datetime.fromtimestamp(task.wall_time(clock_time), tz=UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


async def _prediction(where: Where, state: SimState, task: SimTask) -> dict[str, Any]:
    now = state.now()
    phase = state.phase(task)
    behaviour = state.behaviour(PROTOCOL, task.model)
    get_url = f"{origin(where, state)}{_PREDICTIONS}/{task.id}"
    done_at = task.done_at(now)
    started_at: float | None = task.submitted_at + task.latency * 0.3
    if started_at is not None and (done_at if done_at is not None else now) < started_at:
        started_at = None  # canceled (or still) in the queue: it never started
    output: Any = None
    if phase is Phase.SUCCEEDED:
        files = [
            await file_reference(where, state, file_id, behaviour.encoding)
            for file_id in task.file_ids
        ]
        output = files[0] if behaviour.replicate_output == "string" else files
    error = {Phase.FAILED: task.failure_message}.get(phase)
    return {
        "id": task.id,
        "model": task.model,
        "version": task.extra["version"],
        "input": task.inputs,
        "logs": "" if phase is Phase.QUEUED else "simulated run\n",
        "output": output,
        "data_removed": False,
        "error": error,
        "status": _STATUS_WORDS[phase],
        "created_at": _iso(task, task.submitted_at),
        "started_at": None if started_at is None else _iso(task, started_at),
        "completed_at": None if done_at is None else _iso(task, done_at),
        "urls": {"get": get_url, "cancel": f"{get_url}/cancel"},
        "metrics": (
            {"predict_time": round(done_at - started_at, 3)}
            if done_at is not None and started_at is not None
            else {}
        ),
    }
