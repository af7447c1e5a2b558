"""Kie.ai's market API: ``createTask`` then poll ``recordInfo`` (docs.kie.ai, "Get Task Details").

``{sim}/kie`` stands for ``https://api.kie.ai``. ``POST /api/v1/jobs/createTask`` takes
``{model, input: {...}, callBackUrl?}`` and answers ``{code: 200, msg: "success", data:
{taskId}}``. ``GET /api/v1/jobs/recordInfo?taskId=`` answers ``{code, message, data}`` where
``data`` has ``taskId, model, state, param, resultJson, failCode, failMsg, costTime,
completeTime, createTime, updateTime``; ``state`` walks ``waiting → queuing → generating`` and
ends ``success`` or ``fail``. As in Kie's answers, ``param`` and ``resultJson`` are JSON
*strings*; ``resultJson`` holds ``{"resultUrls": [...]}``. A failed task has ``failCode``
``501`` and the configured ``failure_message``; with ``kie_moderation_rate`` a task goes the
whole way to ``generating`` and is then refused by moderation (``failCode`` ``400``, as Kie
documents for flagged content). Errors are ``{code, msg, data: null}``; with
``kie_errors_as_http_200`` they come with HTTP 200, the real status only in ``code``, which a
client must check. A ``callBackUrl`` gets ``{code, msg, data}`` (``data`` as ``recordInfo``
shows it) when the task ends, signed when the run has a ``kie_webhook_hmac_key``
(``conveyor.sim.callbacks``). ``GET /api/v1/chat/credit`` answers the account's credits
(``{code: 200, msg: "success", data: 100}``): the cheap call that checks a key.
"""

from __future__ import annotations

import json
import string
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
    invalid,
    read_json_object,
)
from conveyor.sim.media import plan_outputs
from conveyor.sim.state import SIM_STATE, Phase, SimState, SimTask

PROTOCOL = "kie"
ORIGIN_PATH = "/kie"
GENERATION_FAILED = "501"
MODERATION_FAILED = "400"
MODERATION_MESSAGE = "Your content was flagged by the content moderation system"
_NO_BALANCE = NoBalanceAnswer(402, "Insufficient Credits", "insufficient_balance")
SIMULATED_CREDITS = 100


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{ORIGIN_PATH}/api/v1/jobs/createTask", create_task)
    app.router.add_get(f"{ORIGIN_PATH}/api/v1/jobs/recordInfo", record_info)
    app.router.add_get(f"{ORIGIN_PATH}/api/v1/chat/credit", credit)


def render_error(error: SimHTTPError, state: SimState) -> web.Response:
    as_200 = state.behaviour(PROTOCOL).kie_errors_as_http_200
    return web.json_response(
        {"code": error.status, "msg": error.message, "data": None},
        status=200 if as_200 else error.status,
        headers=error.headers,
    )


def _millis(seconds: float) -> int:
    return int(seconds * 1000)


async def create_task(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    body = await read_json_object(request, PROTOCOL)
    model = body.get("model")
    await admit(
        request,
        state,
        protocol=PROTOCOL,
        model=model if isinstance(model, str) else None,
        no_balance=_NO_BALANCE,
    )
    if not isinstance(model, str) or not model:
        raise invalid(PROTOCOL, "model is required")
    inputs = body.get("input")
    if not isinstance(inputs, dict):
        raise invalid(PROTOCOL, "input must be an object")
    task_id = state.token(32, string.hexdigits[:16])
    outputs = plan_outputs(
        state.config, model, inputs, owner_id=task_id, count=inputs.get("num_images", 1)
    )
    task = state.submit(
        PROTOCOL,
        model,
        inputs,
        task_id=task_id,
        outputs=outputs,
        idempotency_key=idempotency_key(request),
        extra={"param": json.dumps(body, ensure_ascii=False)},
    )
    if not task.fails and state.chance(state.behaviour(PROTOCOL, model).kie_moderation_rate):
        # It looks fine until the very end: moderation runs on the finished output.
        task.fails = True
        task.failure_message = MODERATION_MESSAGE
        task.extra["fail_code"] = MODERATION_FAILED
    callback_url = body.get("callBackUrl")
    if callbacks.is_callback_url(callback_url):
        callbacks.schedule(
            state, task, callback_url, _callback(state, task, origin(request, state))
        )
    return web.json_response({"code": 200, "msg": "success", "data": {"taskId": task_id}})


def _callback(state: SimState, task: SimTask, here: str) -> callbacks.BuildCallback:
    async def build() -> tuple[dict[str, str], bytes]:
        data = await _record(here, state, task)
        finished = data["state"] == "success"
        message = "Task completed successfully." if finished else "Task failed."
        body = callbacks.json_body({"code": 200, "msg": message, "data": data})
        return callbacks.kie_headers(state, task.id), body

    return build


async def credit(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    await admit(request, state, protocol=PROTOCOL, model=None, no_balance=_NO_BALANCE)
    return web.json_response({"code": 200, "msg": "success", "data": SIMULATED_CREDITS})


def _state_word(task: SimTask, phase: Phase, now: float) -> str:
    match phase:
        case Phase.QUEUED:
            return "waiting" if task.progress(now) < 0.15 else "queuing"
        case Phase.RUNNING:
            return "generating"
        case Phase.SUCCEEDED:
            return "success"
        case _:
            return "fail"


async def record_info(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    task_id = request.query.get("taskId", "")
    task = state.find(PROTOCOL, task_id)
    behaviour = await admit(
        request,
        state,
        protocol=PROTOCOL,
        model=task.model if task else None,
        no_balance=_NO_BALANCE,
    )
    if not task_id:
        raise invalid(PROTOCOL, "taskId is required")
    if task is None:
        raise SimHTTPError(404, "task not found", code="not_found", protocol=PROTOCOL)
    polls = state.observe_poll(task)
    fresh_task_not_found(state, PROTOCOL, polls, behaviour)
    data = await _record(request, state, task)
    return web.json_response({"code": 200, "message": "success", "data": data})


async def _record(where: Where, state: SimState, task: SimTask) -> dict[str, Any]:
    """The task as ``recordInfo``'s ``data`` shows it (and a callback sends it)."""
    behaviour = state.behaviour(PROTOCOL, task.model)
    now = state.now()
    phase = state.phase(task)
    done_at = task.done_at(now)
    result_json = ""
    if phase is Phase.SUCCEEDED:
        urls = [
            await file_reference(where, state, file_id, behaviour.encoding)
            for file_id in task.file_ids
        ]
        result_json = json.dumps({"resultUrls": urls})
    fail_code, fail_msg = "", ""
    if phase is Phase.FAILED:
        fail_code = task.extra.get("fail_code", GENERATION_FAILED)
        fail_msg = task.failure_message
    elif phase is Phase.CANCELED:
        fail_code, fail_msg = "400", "task was cancelled"
    return {
        "taskId": task.id,
        "model": task.model,
        "state": _state_word(task, phase, now),
        "param": task.extra["param"],
        "resultJson": result_json,
        "failCode": fail_code,
        "failMsg": fail_msg,
        "costTime": None if done_at is None else _millis(done_at - task.submitted_at),
        "completeTime": None if done_at is None else _millis(task.wall_time(done_at)),
        "createTime": _millis(task.submitted_wall),
        "updateTime": _millis(task.wall_time(now if done_at is None else done_at)),
    }
