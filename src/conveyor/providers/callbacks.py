"""Provider callbacks: the per-step URL a provider calls when a task is done, and refusing
the calls that are forged, replayed or late.

A step that submits to a provider whose model declares ``callback:`` (``ProviderSpec``)
puts a URL of its own in the request (``with_callback``). The URL names the provider, the
step run and an expiry, signed with the server secret (``callback_url``): nobody can make
one for a step, or keep using one after the task's time is up. When the call arrives:

1. ``verify_address`` checks that signature and the expiry (forged → 401, expired → 401);
2. ``CallbackVerifier.verify`` checks the provider's own signature where it documents one
   and its secret is configured — Kie: ``X-Webhook-Signature`` = base64(HMAC-SHA256(
   ``taskId.timestamp``, webhookHmacKey)); Replicate: Standard Webhooks (``webhook-id``,
   ``webhook-timestamp``, ``webhook-signature`` = ``v1,`` base64(HMAC-SHA256(``id.timestamp.body``,
   the ``whsec_`` secret))) — then that its timestamp is within ``tolerance`` of ours (late →
   401) and that it was not seen before (replayed → 409); and reads the task id and status;
3. the caller compares the task id with the step's ``external_task_id`` (``expect_task``).

Nothing in a callback is trusted beyond "this task may have finished": Kie's signature does
not cover the body and fal's signature (ED25519 against keys fetched from fal's JWKS) is not
checked here, so the step answers a callback by polling once, with its key, for the result.
Replays are remembered in memory per process; a step that has finished ignores callbacks, so
one replayed to another node changes nothing either.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from conveyor.errors import ConveyorError
from conveyor.providers.extract import StatusMapper, TaskState, has_value, parse_path
from conveyor.providers.http.transport import PreparedRequest
from conveyor.providers.spec import CallbackSpec, StatusSpec

__all__ = [
    "CALLBACK_PATH",
    "CallbackAddress",
    "CallbackEvent",
    "CallbackRefused",
    "CallbackVerifier",
    "ReplayGuard",
    "callback_url",
    "expect_task",
    "kie_signature",
    "provider_secret",
    "standard_webhook_signature",
    "verify_address",
    "with_callback",
]

CALLBACK_PATH: Final = "/v1/callbacks"
_KEY_LABEL: Final = b"conveyor provider callbacks v1"
_SEGMENT: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_WHSEC_PREFIX: Final = "whsec_"


class CallbackRefused(ConveyorError):
    """A callback that changes nothing; ``code`` says why (forged, expired, late, replayed…)."""

    status_code = 401
    code = "CALLBACK_REFUSED"


def _forged(message: str) -> CallbackRefused:
    return CallbackRefused(message, code="CALLBACK_FORGED")


# -- our own signed URL -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackAddress:
    """What a callback URL names, once its signature is checked."""

    provider: str
    step_run_id: str
    expires: int


def _address_key(secret: str) -> bytes:
    # A key of its own, so a callback signature is never valid as a webhook or link one.
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _address_signature(secret: str, provider: str, step_run_id: str, expires: int) -> str:
    message = f"{provider}\n{step_run_id}\n{expires}".encode()
    digest = hmac.new(_address_key(secret), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def callback_url(
    public_url: str, secret: str, *, provider: str, step_run_id: str, expires: int
) -> str:
    """``{public_url}/v1/callbacks/{provider}/{step_run_id}/{expires}/{signature}``.

    Everything is in the path: providers that add their own query string cannot break it.
    ``expires`` is Unix seconds (the step's poll budget from now, plus a margin)."""
    for name, value in (("provider", provider), ("step_run_id", step_run_id)):
        if not _SEGMENT.match(value):
            raise ValueError(f"{name} {value!r} cannot be a URL path segment")
    signature = _address_signature(secret, provider, step_run_id, expires)
    base = public_url.rstrip("/")
    return f"{base}{CALLBACK_PATH}/{provider}/{step_run_id}/{expires}/{signature}"


def verify_address(
    secret: str, *, provider: str, step_run_id: str, expires: str, signature: str, now: float
) -> CallbackAddress:
    """The address a callback came to, if Conveyor signed it and it has not expired."""
    if not expires.isdigit() or len(expires) > 12:
        raise _forged("callback URL: the expiry is not a Unix time")
    deadline = int(expires)
    expected = _address_signature(secret, provider, step_run_id, deadline)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise _forged("callback URL: the signature does not match; this URL was not issued here")
    if now > deadline:
        raise CallbackRefused(
            f"callback URL expired {now - deadline:.0f} s ago", code="CALLBACK_EXPIRED"
        )
    return CallbackAddress(provider, step_run_id, deadline)


# -- the submit request ---------------------------------------------------------------------


def with_callback(request: PreparedRequest, callback: CallbackSpec, url: str) -> PreparedRequest:
    """``request`` carrying ``url`` where the provider expects it (and its companions)."""
    if callback.url_in == "query":
        return dataclasses.replace(request, params={**request.params, callback.url_field: url})
    if request.body is not None and not isinstance(request.body, dict):
        raise ValueError("a callback URL goes into a JSON object body")
    body: dict[str, Any] = json.loads(json.dumps(request.body or {}))
    _set(body, callback.url_field, url)
    for field, value in callback.also_send.items():
        _set(body, field, value)
    return dataclasses.replace(request, body=body)


def _set(body: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        child = body.get(part)
        if not isinstance(child, dict):
            child = body[part] = {}
        body = child
    body[last] = value


def provider_secret(callback: CallbackSpec, env: Mapping[str, str]) -> str | None:
    """The provider's signing secret, from the first variable of ``secret_env`` that is set."""
    for name in callback.secret_env:
        if env.get(name):
            return env[name]
    return None


# -- providers' signatures ------------------------------------------------------------------


def kie_signature(secret: str, task_id: str, timestamp: str) -> str:
    """Kie's ``X-Webhook-Signature``: base64(HMAC-SHA256(taskId + "." + timestamp))."""
    digest = hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix(_WHSEC_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConveyorError(
            "the webhook signing secret is not 'whsec_' + base64", code="CONFIGURATION_ERROR"
        ) from None


def standard_webhook_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """One Standard Webhooks signature: ``v1,`` + base64(HMAC-SHA256(``id.timestamp.body``))."""
    signed = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# -- replays --------------------------------------------------------------------------------


class ReplayGuard:
    """Callback ids seen, each kept until its own signed time runs out (after that the
    lateness check refuses it anyway), so memory stays bounded by traffic in the window."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._until: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._until)

    def check(self, key: str, *, until: float, now: float) -> None:
        """Remember ``key`` until ``until``; refuse it if it was seen and is still kept."""
        seen = self._until.get(key)
        if seen is not None and seen >= now:
            raise CallbackRefused(
                "this callback was delivered before; a replay changes nothing",
                status_code=409,
                code="CALLBACK_REPLAYED",
            )
        if len(self._until) >= self.max_entries:
            self._until = {k: v for k, v in self._until.items() if v >= now}
            if len(self._until) >= self.max_entries:
                # Refusing is safe: the step's slow poll still finishes it.
                raise CallbackRefused(
                    "too many callbacks at once; the task will be polled",
                    status_code=503,
                    code="CALLBACK_BUSY",
                )
        self._until[key] = until


# -- verifying a call -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackEvent:
    """A verified callback: which task, and what its body says about it."""

    task_id: str
    state: TaskState
    data: Any
    # True only where the provider's signature covers the body (Standard Webhooks).
    signed_body: bool


class CallbackVerifier:
    """Checks callbacks of one model (``callback`` section, plus its status mapping)."""

    def __init__(
        self,
        callback: CallbackSpec,
        model_status: StatusSpec | None,
        *,
        secret: str | None,
        guard: ReplayGuard,
    ) -> None:
        self.callback = callback
        self.secret = secret
        self.guard = guard
        status = callback.status or model_status
        self._status = (
            StatusMapper(
                status.path,
                running=status.running,
                success=status.success,
                failed=status.failed,
                cancelled=status.cancelled,
                failed_when=status.failed_when,
            )
            if status is not None
            else None
        )
        self._task_id = [parse_path(p) for p in callback.task_id]

    def verify(
        self,
        address: CallbackAddress,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
    ) -> CallbackEvent:
        """Refuse (``CallbackRefused``) or return what the call says; ``address`` comes
        from ``verify_address``, ``now`` is Unix seconds from the engine's clock."""
        at = now
        lower = {k.lower(): v for k, v in headers.items()}
        data = _json_object(body)
        task_id = self._read_task_id(data)
        scheme = self.callback.verify if self.secret else "url-token"
        signed_body = False
        if scheme == "kie-hmac":
            assert self.secret is not None
            key, until = self._check_kie(lower, task_id, at)
        elif scheme == "standard-webhooks":
            assert self.secret is not None
            key, until = self._check_standard(lower, body, at)
            signed_body = True
        else:
            digest = hashlib.sha256(body).hexdigest()
            key, until = f"url:{address.step_run_id}:{digest}", float(address.expires)
        self.guard.check(f"{address.provider}:{key}", until=until, now=at)
        state: TaskState = self._status.state(data) if self._status else "unknown"
        return CallbackEvent(task_id, state, data, signed_body)

    def _read_task_id(self, data: Any) -> str:
        for path in self._task_id:
            value = path.get(data)
            if has_value(value) and isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
        raise CallbackRefused(
            f"callback body names no task at {', '.join(self.callback.task_id)}",
            status_code=400,
            code="CALLBACK_UNREADABLE",
        )

    def _within_window(self, raw: str | None, at: float, header: str) -> int:
        if raw is None or not raw.strip().isdigit():
            raise _forged(f"callback has no valid {header} header")
        stamp = int(raw.strip())
        if abs(at - stamp) > self.callback.tolerance:
            raise CallbackRefused(
                f"callback signed {at - stamp:+.0f} s from now, outside the "
                f"{self.callback.tolerance:g} s window",
                code="CALLBACK_LATE",
            )
        return stamp

    def _check_kie(self, headers: Mapping[str, str], task_id: str, at: float) -> tuple[str, float]:
        assert self.secret is not None
        raw_stamp = headers.get("x-webhook-timestamp")
        given = headers.get("x-webhook-signature")
        if not given or raw_stamp is None:
            raise _forged("callback has no X-Webhook-Signature / X-Webhook-Timestamp")
        expected = kie_signature(self.secret, task_id, raw_stamp.strip())
        if not hmac.compare_digest(expected.encode(), given.strip().encode()):
            raise _forged("X-Webhook-Signature does not match taskId.timestamp")
        stamp = self._within_window(raw_stamp, at, "X-Webhook-Timestamp")
        return f"kie:{task_id}:{stamp}", stamp + self.callback.tolerance

    def _check_standard(
        self, headers: Mapping[str, str], body: bytes, at: float
    ) -> tuple[str, float]:
        assert self.secret is not None
        webhook_id = headers.get("webhook-id")
        raw_stamp = headers.get("webhook-timestamp")
        given = headers.get("webhook-signature")
        if not webhook_id or raw_stamp is None or not given:
            raise _forged("callback has no webhook-id / webhook-timestamp / webhook-signature")
        expected = standard_webhook_signature(self.secret, webhook_id, raw_stamp.strip(), body)
        # The header lists signatures separated by spaces (several during a key rotation).
        if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in given.split()):
            raise _forged("webhook-signature does not match id.timestamp.body")
        stamp = self._within_window(raw_stamp, at, "webhook-timestamp")
        return f"webhook:{webhook_id}", stamp + self.callback.tolerance


def expect_task(event: CallbackEvent, external_task_id: str | None) -> None:
    """Refuse a callback about another task than the one the step waits for."""
    if external_task_id is None or not hmac.compare_digest(
        event.task_id.encode(), external_task_id.encode()
    ):
        raise CallbackRefused(
            f"callback is about task {event.task_id}, not the task this step waits for",
            status_code=409,
            code="CALLBACK_WRONG_TASK",
        )


def _json_object(body: bytes) -> Any:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise CallbackRefused(
            "callback body is not a JSON object", status_code=400, code="CALLBACK_UNREADABLE"
        )
    return data
