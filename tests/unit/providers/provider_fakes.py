"""Fakes for the declarative-provider tests: a scriptable provider server on 127.0.0.1 and a
clock that only moves when slept. What a model stores goes through the production ``AssetIO``
(``conftest.py``), never a stand-in.

``FakeProvider`` answers each ``(method, path)`` from a queue of ``Reply`` values (the last
one repeats) and records every request, so a test says "the first two polls 404, then
success" and afterwards asserts exactly what Conveyor sent.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from conveyor.core.clock import Clock
from conveyor.providers.base import AssetIO, ModelCall, ProviderState
from conveyor.providers.http import HttpModelAdapter
from conveyor.providers.limits import ProviderLimits
from conveyor.providers.spec import ProviderSpec, parse_spec

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
# Where the fake providers listen; the fetch policy of these tests allows this host only.
FAKE_HOST = "127.0.0.1"

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + b"\x00" * 32 + b"\xff\xd9"


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0  # real seconds before answering (timeouts)


Responder = Reply | Callable[["Recorded"], Reply]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


class FakeProvider:
    """A provider whose answers are scripted per route."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Responder]] = {}
        self.prefixes: list[tuple[str, str, Callable[[Recorded], Reply]]] = []
        self.requests: list[Recorded] = []
        self.base_url = ""

    def on(self, method: str, path: str, *replies: Responder) -> None:
        self.routes[(method.upper(), path)] = list(replies)

    def on_prefix(self, method: str, prefix: str, responder: Callable[[Recorded], Reply]) -> None:
        """Answer every path under ``prefix`` (exact routes win)."""
        self.prefixes.append((method.upper(), prefix, responder))

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload = await request.json() if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        record = Recorded(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            payload,
        )
        self.requests.append(record)
        queue = self.routes.get((request.method, request.path))
        responder: Responder | None = None
        if queue:
            responder = queue.pop(0) if len(queue) > 1 else queue[0]
        else:
            for method, prefix, handler in self.prefixes:
                if method == request.method and request.path.startswith(prefix):
                    responder = handler
        if responder is None:
            return web.json_response({"detail": "no such route"}, status=404)
        reply = responder(record) if callable(responder) else responder
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.body is not None:
            return web.Response(
                body=reply.body,
                status=reply.status,
                headers=reply.headers,
                content_type=reply.content_type or "application/octet-stream",
            )
        return web.json_response(reply.json, status=reply.status, headers=reply.headers)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# A small async provider in gen-api's shape; tests override what they exercise.
BASE_SPEC: dict[str, Any] = {
    "name": "acme",
    "title": "Acme",
    "docs": "https://acme.example/docs",
    "base_url": "https://acme.example/api",
    "auth": {"type": "bearer", "key_env": ["ACME_KEY"]},
    "limits": {"timeout": 2, "retries": 2, "retry_base_delay": 0.5, "retry_max_delay": 5},
    "errors": {"messages": {401: "invalid API key", 402: "top up your balance"}},
    "models": [
        {
            "id": "acme/paint",
            "kind": "image",
            "title": "Paint",
            "inputs": {"prompt": {"type": "string"}},
            "defaults": {"width": 512},
            "submit": {
                "method": "POST",
                "path": "/tasks",
                "body": {"prompt": "{{prompt}}", "width": "{{width}}"},
                "task_id": "id",
            },
            "poll": {
                "path": "/tasks/{{task_id}}",
                "initial_interval": 0.5,
                "interval": 2,
                "max_interval": 10,
                "max_wait": 60,
                "not_found_grace": 2,
                "max_errors": 3,
            },
            "status": {
                "path": "status",
                "running": ["queued", "running"],
                "success": ["done"],
                "failed": ["failed"],
                "cancelled": ["cancelled"],
            },
            "result": {"kind": "file", "paths": ["result[0]", "output.url"]},
            "error": ["error"],
            "cancel": {"method": "POST", "path": "/tasks/{{task_id}}/cancel", "response": "none"},
        }
    ],
}


def make_spec(
    override: Mapping[str, Any] | None = None, model: Mapping[str, Any] | None = None
) -> ProviderSpec:
    data = deep_merge(BASE_SPEC, override or {})
    if model is not None:
        data["models"] = [deep_merge(data["models"][0], model)]
    return parse_spec(data, source="test")


class Checkpoints:
    def __init__(self, provider: FakeProvider | None = None) -> None:
        self.states: list[ProviderState] = []
        self.requests_before: list[int] = []
        self._provider = provider

    async def __call__(self, state: ProviderState) -> None:
        self.states.append(state)
        if self._provider is not None:
            self.requests_before.append(len(self._provider.requests))


def make_adapter(
    spec: ProviderSpec,
    provider: FakeProvider,
    session: aiohttp.ClientSession,
    clock: Clock,
    *,
    api_key: str | None = "k-123",
    model: str | None = None,
) -> HttpModelAdapter:
    limits = ProviderLimits.from_spec(spec, clock=clock)
    return HttpModelAdapter(
        spec,
        model or spec.models[0].id,
        session,
        limits,
        api_key=api_key,
        base_url=provider.base_url,
        env={},
    )


def make_call(
    files: AssetIO,
    inputs: dict[str, Any] | None = None,
    *,
    cancelled: Callable[[], bool] | None = None,
    model_id: str = "acme/paint",
) -> ModelCall:
    return ModelCall(
        model_id=model_id,
        inputs=inputs if inputs is not None else {"prompt": "a red fox"},
        idempotency_key="step-run-42",
        files=files,
        is_cancelled=cancelled or (lambda: False),
    )
