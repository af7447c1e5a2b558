"""The gate every protocol request passes: credentials, then injected faults.

``admit`` checks the API key (401 unknown, the protocol's "no balance" answer, 403
forbidden), then applies the run's faults in a fixed order: a 429 burst (with
``Retry-After``), a 500, a hang ending in 504. It raises ``SimHTTPError``; the app's error
middleware asks the protocol that raised it to render the body, because each provider
words its errors differently while the statuses mean the same things.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from conveyor.sim.config import Behaviour
from conveyor.sim.state import SimState

# Conveyor's own header first; the others are what clients commonly send.
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "X-Idempotency-Key")


class SimHTTPError(Exception):
    """An error answer; ``code`` is a stable name the protocol renderers map to their words."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        protocol: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.protocol = protocol
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class NoBalanceAnswer:
    """How a provider says "out of credit" (402 at most; fal 403; OpenAI a 429)."""

    status: int = 402
    message: str = "insufficient balance"
    code: str = "insufficient_balance"


def presented_key(request: web.Request, schemes: tuple[str, ...]) -> str | None:
    """The key in ``Authorization: <scheme> KEY``, for the schemes the provider accepts.

    Strict on purpose: a client sending ``Bearer`` where fal wants ``Key`` gets the 401 the
    real provider would give, instead of a pass that hides the bug.
    """
    prefix, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    if prefix.lower() in {scheme.lower() for scheme in schemes} and key.strip():
        return key.strip()
    return None


async def admit(
    request: web.Request,
    state: SimState,
    *,
    protocol: str,
    model: str | None,
    schemes: tuple[str, ...] = ("Bearer",),
    no_balance: NoBalanceAnswer = NoBalanceAnswer(),
) -> Behaviour:
    """Check credentials and apply injected faults; returns the behaviour for this call."""
    state.counters.requests[protocol] += 1
    behaviour = state.behaviour(protocol, model)
    verdict = state.config.key_verdict(presented_key(request, schemes))
    if verdict != "ok":
        if verdict == "no_balance":
            status, message, code = no_balance.status, no_balance.message, no_balance.code
        elif verdict == "forbidden":
            status, message, code = 403, "this key may not use this model", "forbidden"
        else:
            status, message, code = 401, "invalid or missing API key", "unauthorized"
        state.counters.auth_failures[protocol][str(status)] += 1
        raise SimHTTPError(status, message, code=code, protocol=protocol)
    if state.take_rate_limit_slot(protocol, behaviour):
        state.counters.rate_limited[protocol] += 1
        raise SimHTTPError(
            429,
            "too many requests (simulated burst)",
            code="rate_limited",
            protocol=protocol,
            headers={"Retry-After": str(behaviour.retry_after_seconds)},
        )
    if state.chance(behaviour.http_500_rate):
        state.counters.server_errors[protocol] += 1
        raise SimHTTPError(
            500, "internal server error (simulated)", code="server_error", protocol=protocol
        )
    if state.chance(behaviour.timeout_rate):
        state.counters.timeouts[protocol] += 1
        state.counters.server_errors[protocol] += 1
        await state.hang(behaviour.hang_seconds)
        raise SimHTTPError(
            504, "upstream timed out (simulated hang)", code="timeout", protocol=protocol
        )
    return behaviour


def fresh_task_not_found(state: SimState, protocol: str, polls: int, behaviour: Behaviour) -> None:
    """Raise the 404 a provider gives while a task is too fresh to be visible."""
    if polls <= behaviour.not_found_polls:
        state.counters.not_found_polls[protocol] += 1
        raise SimHTTPError(404, "task not found (yet)", code="not_found", protocol=protocol)


def idempotency_key(request: web.Request) -> str | None:
    for header in IDEMPOTENCY_HEADERS:
        value = request.headers.get(header, "").strip()
        if value:
            return value
    return None


async def read_json_object(request: web.Request, protocol: str) -> dict[str, Any]:
    """The JSON object body, or a 400 the protocol renders in its own words."""
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SimHTTPError(
            400, f"body is not valid JSON: {error}", code="bad_request", protocol=protocol
        ) from error
    if not isinstance(body, dict):
        raise SimHTTPError(400, "body must be a JSON object", code="bad_request", protocol=protocol)
    return body


def invalid(protocol: str, message: str, status: int = 422) -> SimHTTPError:
    """A validation error for a request the real provider would refuse."""
    return SimHTTPError(status, message, code="invalid_request", protocol=protocol)
