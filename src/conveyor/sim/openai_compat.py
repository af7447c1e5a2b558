"""An OpenAI-compatible API: chat with images, image generation, speech, the model list.

``{sim}/openai`` stands for ``https://api.openai.com``, so the base URL a client sets is
``{sim}/openai/v1`` (the same one setting that points Conveyor at Ollama, vLLM or
llama.cpp). Calls are synchronous: each waits its drawn latency (through the injected
``sleep``) and may fail with a 500 per ``failure_rate``. Chat answers are derived from the
request (see ``chat_answers``); images are real PNG/JPEG/WebP, as ``b64_json`` or as a
``url`` under ``/files``; speech is real WAV, or raw ``pcm`` — other formats (mp3, opus,
aac, flac) are answered as WAV with ``X-Sim-Substituted-Format: wav``. As on OpenAI, an
account out of credit gets a 429 with code ``insufficient_quota``, which is *not* a rate
limit: retrying will not help. Streaming is not simulated (``stream: true`` → 400).
"""

from __future__ import annotations

import asyncio
import base64
import string
import time
from typing import Any

from aiohttp import web

from conveyor.sim.audio import synthesize_pcm, wav_bytes
from conveyor.sim.chat_answers import answer
from conveyor.sim.config import Behaviour
from conveyor.sim.files import file_url
from conveyor.sim.gate import (
    NoBalanceAnswer,
    SimHTTPError,
    admit,
    idempotency_key,
    invalid,
    read_json_object,
)
from conveyor.sim.media import plan_outputs, render_async
from conveyor.sim.state import SIM_STATE, SimState

PROTOCOL = "openai"
ORIGIN_PATH = "/openai"
API_BASE = f"{ORIGIN_PATH}/v1"
_NO_BALANCE = NoBalanceAnswer(
    429,
    "You exceeded your current quota, please check your plan and billing details.",
    "insufficient_balance",
)
# Our error codes → OpenAI's error ``type`` and ``code``.
_ERROR_WORDS: dict[str, tuple[str, str | None]] = {
    "unauthorized": ("invalid_request_error", "invalid_api_key"),
    "insufficient_balance": ("insufficient_quota", "insufficient_quota"),
    "forbidden": ("permission_error", "forbidden"),
    "rate_limited": ("requests", "rate_limit_exceeded"),
    "not_found": ("invalid_request_error", "model_not_found"),
    "timeout": ("server_error", "timeout"),
}
_AUDIO_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm"}
_ID_ALPHABET = string.ascii_letters + string.digits


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API_BASE}/chat/completions", chat_completions)
    app.router.add_post(f"{API_BASE}/images/generations", image_generations)
    app.router.add_post(f"{API_BASE}/audio/speech", speech)
    app.router.add_get(f"{API_BASE}/models", list_models)
    app.router.add_get(f"{API_BASE}/models/{{model_id:.+}}", get_model)


def render_error(error: SimHTTPError, state: SimState) -> web.Response:
    error_type, code = _ERROR_WORDS.get(
        error.code, ("server_error" if error.status >= 500 else "invalid_request_error", None)
    )
    return web.json_response(
        {"error": {"message": error.message, "type": error_type, "param": None, "code": code}},
        status=error.status,
        headers=error.headers,
    )


async def _admitted_call(request: web.Request, state: SimState) -> tuple[dict[str, Any], str]:
    """Read the body, pass the gate, count the call; returns (body, model)."""
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
        raise invalid(PROTOCOL, "you must provide a model parameter", 400)
    return body, model


async def _run(request: web.Request, state: SimState, model: str) -> Behaviour:
    """The call's simulated work: count it, wait its latency, maybe fail."""
    behaviour = state.behaviour(PROTOCOL, model)
    state.record_call(PROTOCOL, model, idempotency_key(request))
    latency = state.rng.uniform(behaviour.latency_min, behaviour.latency_max)
    if latency * behaviour.latency_scale > 0:
        await state.sleep(latency * behaviour.latency_scale)
    if state.chance(behaviour.failure_rate):
        state.counters.server_errors[PROTOCOL] += 1
        raise SimHTTPError(500, behaviour.failure_message, code="failed", protocol=PROTOCOL)
    return behaviour


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


async def chat_completions(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    body, model = await _admitted_call(request, state)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid(PROTOCOL, "messages must be a non-empty array", 400)
    if body.get("stream"):
        raise invalid(PROTOCOL, "streaming is not simulated; send stream=false", 400)
    await _run(request, state, model)
    content = answer(messages, body.get("response_format"))
    prompt_tokens = _tokens(str(messages))
    completion_tokens = _tokens(content)
    return web.json_response(
        {
            "id": f"chatcmpl-{state.token(24, _ID_ALPHABET)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "conveyor-sim",
        }
    )


async def image_generations(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    body, model = await _admitted_call(request, state)
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        raise invalid(PROTOCOL, "prompt is required", 400)
    # DALL·E answers URLs by default; the gpt-image models only ever answer base64.
    shape = body.get("response_format") or ("url" if model.startswith("dall-e") else "b64_json")
    if shape not in ("url", "b64_json"):
        raise invalid(PROTOCOL, "response_format must be 'url' or 'b64_json'", 400)
    await _run(request, state, model)
    owner_id = f"img-{state.token(16)}"
    outputs = plan_outputs(state.config, model, body, owner_id=owner_id, count=body.get("n", 1))
    data: list[dict[str, str]] = []
    for file_id, spec in zip(state.register_files(owner_id, outputs), outputs, strict=True):
        if shape == "url":
            data.append({"url": file_url(request, state, file_id)})
        else:
            encoded = base64.b64encode(await render_async(spec)).decode("ascii")
            data.append({"b64_json": encoded})
    return web.json_response({"created": int(time.time()), "data": data})


async def speech(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    body, model = await _admitted_call(request, state)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise invalid(PROTOCOL, "input is required", 400)
    requested = str(body.get("response_format") or "mp3")
    await _run(request, state, model)
    pcm = await asyncio.to_thread(synthesize_pcm, text, max_seconds=state.config.max_audio_seconds)
    if requested == "pcm":
        return web.Response(body=pcm, content_type=_AUDIO_TYPES["pcm"])
    headers = {} if requested == "wav" else {"X-Sim-Substituted-Format": "wav"}
    return web.Response(body=wav_bytes(pcm), content_type=_AUDIO_TYPES["wav"], headers=headers)


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "conveyor-sim"}


async def list_models(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    await admit(request, state, protocol=PROTOCOL, model=None, no_balance=_NO_BALANCE)
    return web.json_response(
        {"object": "list", "data": [_model_object(name) for name in state.config.openai_models]}
    )


async def get_model(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    model_id = request.match_info["model_id"]
    await admit(request, state, protocol=PROTOCOL, model=None, no_balance=_NO_BALANCE)
    if model_id not in state.config.openai_models:
        raise SimHTTPError(
            404, f"The model '{model_id}' does not exist", code="not_found", protocol=PROTOCOL
        )
    return web.json_response(_model_object(model_id))
