"""gen-api.ru as seed 001 describes it: submit to ``networks/{model}``, poll ``request/get``.

``{sim}/genapi`` stands for ``https://api.gen-api.ru``, so the API base is
``{sim}/genapi/api/v1``. Submitting answers ``{"request_id": <int>, "status": "starting"}``;
polling walks ``starting → pending → processing`` and ends ``success`` (with ``result: [..]``
or ``full_response: [{"url": ..}]`` per ``result_field``, each entry a URL, ``data:`` URL or
bare base64 per ``encoding``) or ``failed``/``error`` with ``error`` (odd request ids say
``error``, even ones ``failed``, so clients meet both). A body with ``messages`` is an LLM
network call: its answer is text derived from the messages (as the OpenAI chat answers
are), given as ``result: [text]`` or ``full_response: [{message: {content}}]``. Only these
two routes exist: the endpoints the seed warns against (``networks/{model}/{id}``,
``requests/{id}``, ``tasks/{id}``, …) fall through to the app's unknown-route handler, which
answers 404 and counts them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from conveyor.sim.chat_answers import answer
from conveyor.sim.config import Encoding
from conveyor.sim.files import file_reference
from conveyor.sim.gate import (
    SimHTTPError,
    admit,
    fresh_task_not_found,
    idempotency_key,
    invalid,
    read_json_object,
)
from conveyor.sim.media import plan_outputs
from conveyor.sim.state import SIM_STATE, Phase, SimState, SimTask

PROTOCOL = "genapi"
ORIGIN_PATH = "/genapi"
API_BASE = f"{ORIGIN_PATH}/api/v1"
# The seed's z-image defaults.
DEFAULT_SIZE = (992, 992)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API_BASE}/networks/{{model}}", submit)
    app.router.add_get(f"{API_BASE}/request/get/{{request_id}}", poll)


def render_error(error: SimHTTPError, state: SimState) -> web.Response:
    return web.json_response(
        {"status": "error", "error": error.message, "code": error.status},
        status=error.status,
        headers=error.headers,
    )


async def submit(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    model = request.match_info["model"]
    await admit(request, state, protocol=PROTOCOL, model=model)
    body = await read_json_object(request, PROTOCOL)
    task_id = state.numeric_id()
    messages = body.get("messages")
    if isinstance(messages, list):
        # An LLM network: the answer is text, derived from the messages like OpenAI's.
        outputs = []
        extra = {"text": answer(messages, body.get("response_format"))}
    else:
        prompt = body.get("prompt", body.get("text"))
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid(PROTOCOL, "prompt (or messages, for LLM networks) is required")
        outputs = plan_outputs(
            state.config,
            model,
            body,
            owner_id=task_id,
            count=body.get("num_images", 1),
            default_size=DEFAULT_SIZE,
        )
        extra = {}
    state.submit(
        PROTOCOL,
        model,
        body,
        task_id=task_id,
        outputs=outputs,
        idempotency_key=idempotency_key(request),
        extra=extra,
    )
    return web.json_response({"request_id": int(task_id), "status": "starting"})


def _status_word(task: SimTask, phase: Phase, now: float) -> str:
    match phase:
        case Phase.QUEUED:
            return "starting" if task.progress(now) < 0.15 else "pending"
        case Phase.RUNNING:
            return "processing"
        case Phase.SUCCEEDED:
            return "success"
        case _:
            return "error" if int(task.id) % 2 else "failed"


async def poll(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    task = state.find(PROTOCOL, request.match_info["request_id"])
    behaviour = await admit(request, state, protocol=PROTOCOL, model=task.model if task else None)
    if task is None:
        raise SimHTTPError(404, "request not found", code="not_found", protocol=PROTOCOL)
    polls = state.observe_poll(task)
    fresh_task_not_found(state, PROTOCOL, polls, behaviour)
    phase = state.phase(task)
    reply: dict[str, Any] = {
        "request_id": int(task.id),
        "status": _status_word(task, phase, state.now()),
    }
    if phase is Phase.SUCCEEDED:
        if behaviour.result_field == "result":
            reply["result"] = await _result_entries(request, state, task, behaviour.encoding)
        else:
            reply["full_response"] = await _full_response(request, state, task, behaviour.encoding)
    elif phase is Phase.FAILED:
        reply["error"] = task.failure_message
    elif phase is Phase.CANCELED:
        reply["error"] = "request was cancelled"
    return web.json_response(reply)


async def _result_entries(
    request: web.Request, state: SimState, task: SimTask, encoding: Encoding
) -> list[str]:
    if "text" in task.extra:
        return [task.extra["text"]]
    return [await file_reference(request, state, file_id, encoding) for file_id in task.file_ids]


async def _full_response(
    request: web.Request, state: SimState, task: SimTask, encoding: Encoding
) -> list[dict[str, Any]]:
    if "text" in task.extra:
        message = {"role": "assistant", "content": task.extra["text"]}
        return [{"index": 0, "message": message, "finish_reason": "stop"}]
    return [
        {"url": await file_reference(request, state, file_id, encoding)}
        for file_id in task.file_ids
    ]
