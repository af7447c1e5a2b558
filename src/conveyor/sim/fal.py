"""fal.ai's queue API (fal.ai/docs, "Queue API"), for model ids like ``fal-ai/birefnet``.

``{sim}/fal`` stands for ``https://queue.fal.run``; keys go as ``Authorization: Key KEY``.
``POST /{owner}/{app}[/{path}]`` queues a request and answers ``{status: "IN_QUEUE",
request_id, response_url, status_url, cancel_url, queue_position}``; the three URLs use only
``{owner}/{app}`` (a sub-path such as ``fal-ai/flux/dev`` is dropped), as fal's do.
``GET .../requests/{id}/status[?logs=1]`` answers 202 with ``IN_QUEUE`` (and
``queue_position``) or ``IN_PROGRESS``, then 200 with ``COMPLETED`` (plus ``error`` and
``error_type`` when the run failed or was cancelled). ``GET .../requests/{id}`` gives the
model's output — ``{images: [{url, content_type, width, height}], ...}``, birefnet's ``{image:
{...}}``, ``{video: {...}}`` or ``{audio: {...}}`` — or 400 while still running. The
background models (``fal-ai/birefnet``, ``fal-ai/flux-kontext-lora``, which seed 004 uses to
put a product on a clean background) return an RGBA cut-out PNG of the request's
``image_url`` when it came inline (``images.cut_out``), in their own answer shapes. ``PUT
.../requests/{id}/cancel`` answers 202 ``CANCELLATION_REQUESTED``, 400 ``ALREADY_COMPLETED`` or
404 ``NOT_FOUND``. Running out of balance is a 403 ("User is locked"), as on fal. A
``fal_webhook`` query parameter gets ``{request_id, gateway_request_id, status: OK|ERROR,
payload, error?}`` when the request ends (``conveyor.sim.callbacks``; unsigned here).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from conveyor.sim import callbacks
from conveyor.sim.files import Where, file_reference, origin
from conveyor.sim.gate import (
    NoBalanceAnswer,
    SimHTTPError,
    admit,
    fresh_task_not_found,
    idempotency_key,
    read_json_object,
)
from conveyor.sim.media import as_cutouts, media_kind_for, plan_outputs, prompt_of
from conveyor.sim.state import SIM_STATE, Phase, SimState, SimTask

PROTOCOL = "fal"
ORIGIN_PATH = "/fal"
_REQUEST = f"{ORIGIN_PATH}/{{owner}}/{{app}}/requests/{{request_id}}"
_NO_BALANCE = NoBalanceAnswer(
    403, "User is locked. Reason: Exhausted balance. Top up your balance.", "insufficient_balance"
)
_STATUS_WORDS = {Phase.QUEUED: "IN_QUEUE", Phase.RUNNING: "IN_PROGRESS"}
# Apps whose images are the request's product on a new background: cut-outs here.
_BACKGROUND_APPS = frozenset({"fal-ai/flux-kontext-lora"})


def add_routes(app: web.Application) -> None:
    # Request routes first: a submit path with a sub-path would match them otherwise.
    app.router.add_get(f"{_REQUEST}/status", request_status)
    app.router.add_get(_REQUEST, request_result)
    app.router.add_put(f"{_REQUEST}/cancel", cancel_request)
    app.router.add_post(f"{ORIGIN_PATH}/{{owner}}/{{app}}", submit)
    app.router.add_post(f"{ORIGIN_PATH}/{{owner}}/{{app}}/{{path:.+}}", submit)


def render_error(error: SimHTTPError, state: SimState) -> web.Response:
    return web.json_response({"detail": error.message}, status=error.status, headers=error.headers)


def _urls(request: web.Request, state: SimState, app_id: str, request_id: str) -> dict[str, str]:
    base = f"{origin(request, state)}{ORIGIN_PATH}/{app_id}/requests/{request_id}"
    return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}


def _queue_position(task: SimTask, now: float) -> int:
    # Moves down to 0 as the request nears its start; cheap, unlike counting the queue.
    return max(0, round((0.3 - task.progress(now)) * 10))


async def submit(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    app_id = f"{request.match_info['owner']}/{request.match_info['app']}"
    sub_path = request.match_info.get("path", "")
    if sub_path == "requests" or sub_path.startswith("requests/"):
        # A POST where fal wants GET/PUT on a request: a client bug worth counting.
        state.counters.wrong_endpoints[f"POST {request.path}"] += 1
        raise SimHTTPError(405, "Method Not Allowed", code="wrong_endpoint", protocol=PROTOCOL)
    model = f"{app_id}/{sub_path}" if sub_path else app_id
    await admit(
        request, state, protocol=PROTOCOL, model=model, schemes=("Key",), no_balance=_NO_BALANCE
    )
    body = await read_json_object(request, PROTOCOL)
    request_id = state.uuid()
    outputs = plan_outputs(
        state.config,
        model,
        body,
        owner_id=request_id,
        count=body.get("num_images", 1),
    )
    if app_id in _BACKGROUND_APPS or media_kind_for(model) == "cutout":
        outputs = as_cutouts(outputs, body.get("image_url"), state.config.max_image_side)
    task = state.submit(
        PROTOCOL,
        model,
        body,
        task_id=request_id,
        outputs=outputs,
        idempotency_key=idempotency_key(request),
        extra={"app": app_id},
    )
    webhook = request.query.get("fal_webhook")
    if callbacks.is_callback_url(webhook):
        callbacks.schedule(state, task, webhook, _callback(state, task, origin(request, state)))
    return web.json_response(
        {
            "status": "IN_QUEUE",
            "request_id": request_id,
            **_urls(request, state, app_id, request_id),
            "queue_position": _queue_position(task, state.now()),
        }
    )


async def _find(request: web.Request, state: SimState) -> SimTask:
    app_id = f"{request.match_info['owner']}/{request.match_info['app']}"
    task = state.find(PROTOCOL, request.match_info["request_id"])
    if task is not None and task.extra["app"] != app_id:
        task = None
    await admit(
        request,
        state,
        protocol=PROTOCOL,
        model=task.model if task else None,
        schemes=("Key",),
        no_balance=_NO_BALANCE,
    )
    if task is None:
        raise SimHTTPError(404, "Request not found", code="not_found", protocol=PROTOCOL)
    return task


async def request_status(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    task = await _find(request, state)
    polls = state.observe_poll(task)
    fresh_task_not_found(state, PROTOCOL, polls, state.behaviour(PROTOCOL, task.model))
    now = state.now()
    phase = state.phase(task)
    answer: dict[str, Any] = {
        "status": _STATUS_WORDS.get(phase, "COMPLETED"),
        "request_id": task.id,
        **_urls(request, state, task.extra["app"], task.id),
    }
    if phase is Phase.QUEUED:
        answer["queue_position"] = _queue_position(task, now)
    if request.query.get("logs") in ("1", "true"):
        answer["logs"] = (
            []
            if phase is Phase.QUEUED
            else [{"message": "simulated inference", "level": "INFO", "source": "user"}]
        )
    else:
        answer["logs"] = None
    if phase.terminal:
        done_at = task.done_at(now) or now
        answer["metrics"] = {"inference_time": round(max(0.0, done_at - task.submitted_at), 3)}
    if phase is Phase.FAILED:
        answer["error"], answer["error_type"] = task.failure_message, "runner_failed"
    elif phase is Phase.CANCELED:
        answer["error"], answer["error_type"] = "Request was cancelled", "request_cancelled"
    return web.json_response(answer, status=200 if phase.terminal else 202)


async def request_result(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    task = await _find(request, state)
    phase = state.phase(task)
    state.mark_seen(task)
    if not phase.terminal:
        raise SimHTTPError(
            400, "Request is still in progress", code="in_progress", protocol=PROTOCOL
        )
    if phase is Phase.CANCELED:
        raise SimHTTPError(400, "Request was cancelled", code="cancelled", protocol=PROTOCOL)
    if phase is Phase.FAILED:
        raise SimHTTPError(422, task.failure_message, code="failed", protocol=PROTOCOL)
    return web.json_response(await _output(request, state, task))


async def cancel_request(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    try:
        task = await _find(request, state)
    except SimHTTPError as error:
        if error.code != "not_found":
            raise
        return web.json_response({"status": "NOT_FOUND"}, status=404)
    if state.cancel(task):
        return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)
    return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)


def _callback(state: SimState, task: SimTask, here: str) -> callbacks.BuildCallback:
    async def build() -> tuple[dict[str, str], bytes]:
        phase = state.phase(task)
        body: dict[str, Any] = {"request_id": task.id, "gateway_request_id": task.id}
        if phase is Phase.SUCCEEDED:
            body.update(status="OK", payload=await _output(here, state, task))
        else:
            error = "Request was cancelled" if phase is Phase.CANCELED else task.failure_message
            body.update(status="ERROR", error=error, payload={"detail": [{"msg": error}]})
        return {}, callbacks.json_body(body)

    return build


async def _output(where: Where, state: SimState, task: SimTask) -> dict[str, Any]:
    behaviour = state.behaviour(PROTOCOL, task.model)
    files: list[dict[str, Any]] = []
    # The answer's shape is the app's (FLUX answers ``images`` even when they are cut-outs).
    kind = media_kind_for(task.model)
    for file_id in task.file_ids:
        spec = state.file(file_id)
        if spec is None:
            continue
        entry: dict[str, Any] = {
            "url": await file_reference(where, state, file_id, behaviour.encoding),
            "content_type": spec.mime_type,
            "file_name": file_id,
        }
        if spec.kind != "audio":
            entry.update(width=spec.width, height=spec.height)
        files.append(entry)
    single_file_keys = {"cutout": "image", "animation": "video", "audio": "audio"}
    if kind in single_file_keys and files:
        return {single_file_keys[kind]: files[0]}
    return {
        "images": files,
        "prompt": prompt_of(task.inputs),
        "seed": int(task.id.replace("-", "")[:8], 16),
        "has_nsfw_concepts": [False] * len(files),
        "timings": {"inference": round(task.latency, 3)},
    }
