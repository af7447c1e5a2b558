"""Provider callbacks, the pure parts: the per-step signed URL, where the shipped specs put
it, and refusing forged, replayed and late calls (Kie's HMAC, Replicate's Standard
Webhooks, and the URL token alone for fal)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from conveyor.providers.callbacks import (
    CallbackAddress,
    CallbackRefused,
    CallbackVerifier,
    ReplayGuard,
    callback_url,
    expect_task,
    kie_signature,
    provider_secret,
    standard_webhook_signature,
    verify_address,
    with_callback,
)
from conveyor.providers.http import read_specs
from conveyor.providers.http.transport import PreparedRequest
from conveyor.providers.spec import ModelSpec

SECRET = "server-secret-of-at-least-32-characters"
NOW = 1_765_172_200.0
KIE_KEY = "kie-webhook-hmac-key"
# The Standard Webhooks specification's own test vector.
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@functools.cache
def shipped_models() -> dict[str, ModelSpec]:
    return {model.id: model for spec in read_specs() for model in spec.models}


def shipped_model(model_id: str) -> ModelSpec:
    return shipped_models()[model_id]


def verifier(model_id: str, secret: str | None, guard: ReplayGuard | None = None) -> Any:
    model = shipped_model(model_id)
    assert model.callback is not None
    return CallbackVerifier(
        model.callback, model.status, secret=secret, guard=guard or ReplayGuard()
    )


def address(provider: str, expires: float = NOW + 900) -> CallbackAddress:
    return CallbackAddress(provider, "step-run-7", int(expires))


def refused(code: str, call: Any, *args: Any, **kwargs: Any) -> CallbackRefused:
    with pytest.raises(CallbackRefused) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


# -- our signed URL ---------------------------------------------------------------------


def test_a_callback_url_verifies_and_every_forgery_is_refused() -> None:
    url = callback_url(
        "https://conveyor.example/",
        SECRET,
        provider="kie",
        step_run_id="step-run-7",
        expires=int(NOW + 900),
    )
    prefix = "https://conveyor.example/v1/callbacks/kie/step-run-7/1765173100/"
    assert url.startswith(prefix)
    signature = url.removeprefix(prefix)
    assert len(signature) == 43  # a whole SHA-256, base64url without padding
    parts = {"provider": "kie", "step_run_id": "step-run-7", "expires": "1765173100"}
    found = verify_address(SECRET, **parts, signature=signature, now=NOW)
    assert found == CallbackAddress("kie", "step-run-7", 1_765_173_100)

    for changed in (
        {"provider": "fal"},
        {"step_run_id": "step-run-8"},
        {"expires": "1765999999"},
        {"signature": signature[:-1] + ("A" if signature[-1] != "A" else "B")},
    ):
        given = {**parts, "signature": signature, **changed}
        error = refused("CALLBACK_FORGED", verify_address, SECRET, **given, now=NOW)
        assert error.status_code == 401
    refused(
        "CALLBACK_FORGED", verify_address, "another-secret", **parts, signature=signature, now=NOW
    )
    refused(
        "CALLBACK_FORGED",
        verify_address,
        SECRET,
        **{**parts, "expires": "soon"},
        signature=signature,
        now=NOW,
    )
    late = refused(
        "CALLBACK_EXPIRED", verify_address, SECRET, **parts, signature=signature, now=NOW + 901
    )
    assert "expired 1 s ago" in late.message
    with pytest.raises(ValueError, match="cannot be a URL path segment"):
        callback_url("https://c.example", SECRET, provider="kie", step_run_id="a/b", expires=1)


def test_the_shipped_specs_put_the_url_where_each_provider_reads_it() -> None:
    url = "https://conveyor.example/v1/callbacks/x/step/1/sig"
    body = {"model": "m", "input": {"prompt": "p"}}
    submit = PreparedRequest("submit", "POST", "https://api.example/go", {}, {}, body)

    kie = shipped_model("kie/seedance-1.5-pro").callback
    assert kie is not None
    sent = with_callback(submit, kie, url)
    assert sent.body == {"model": "m", "input": {"prompt": "p"}, "callBackUrl": url}
    assert submit.body == {"model": "m", "input": {"prompt": "p"}}  # the original is untouched

    replicate = shipped_model("replicate/flux-schnell").callback
    assert replicate is not None
    sent = with_callback(submit, replicate, url)
    assert sent.body["webhook"] == url
    assert sent.body["webhook_events_filter"] == ["completed"]

    fal = shipped_model("fal/birefnet").callback
    assert fal is not None
    sent = with_callback(submit, fal, url)
    assert sent.params == {"fal_webhook": url}
    assert sent.body == body

    assert provider_secret(kie, {"CONVEYOR_KIE_WEBHOOK_HMAC_KEY": KIE_KEY}) == KIE_KEY
    assert provider_secret(kie, {}) is None


# -- Kie: X-Webhook-Signature over taskId.timestamp ---------------------------------------------


def kie_callback(task_id: str = "task_seedream_1765172101886", state: str = "success") -> bytes:
    data = {"taskId": task_id, "state": state, "resultJson": '{"resultUrls": ["u"]}'}
    return json.dumps({"code": 200, "msg": "success", "data": data}).encode()


def kie_headers(task_id: str, stamp: str, key: str = KIE_KEY) -> dict[str, str]:
    return {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": kie_signature(key, task_id, stamp)}


def test_kie_signature_matches_an_independent_computation() -> None:
    # printf 'task_seedream_1765172101886.1765172200' |
    #   openssl dgst -sha256 -hmac 'kie-webhook-hmac-key' -binary | base64
    expected = "Q2cDGGu8YTiFPDvkJ844J9vhbWR3/amj7SLejhCEjvY="
    assert kie_signature(KIE_KEY, "task_seedream_1765172101886", "1765172200") == expected


def test_kie_callbacks_valid_forged_replayed_and_late() -> None:
    task = "task_seedream_1765172101886"
    check = verifier("kie/seedance-1.5-pro", KIE_KEY)
    stamp = str(int(NOW))
    event = check.verify(address("kie"), kie_headers(task, stamp), kie_callback(task), now=NOW)
    assert event.task_id == task
    assert event.state == "success"
    assert event.signed_body is False  # Kie signs taskId.timestamp only
    expect_task(event, task)
    refused("CALLBACK_WRONG_TASK", expect_task, event, "task_other")

    # Replayed: the same delivery again, within the window.
    replay = refused(
        "CALLBACK_REPLAYED",
        check.verify,
        address("kie"),
        kie_headers(task, stamp),
        kie_callback(task),
        now=NOW + 5,
    )
    assert replay.status_code == 409
    # Forged: wrong key, a signature for another task, no headers at all.
    for headers in (
        kie_headers(task, stamp, key="guessed"),
        kie_headers("task_other", stamp),
        {},
        {"X-Webhook-Timestamp": stamp},
    ):
        refused(
            "CALLBACK_FORGED", check.verify, address("kie"), headers, kie_callback(task), now=NOW
        )
    # Late (or from the future), even when correctly signed.
    old = str(int(NOW) - 301)
    error = refused(
        "CALLBACK_LATE",
        check.verify,
        address("kie"),
        kie_headers(task, old),
        kie_callback(task),
        now=NOW,
    )
    assert "outside the 300 s window" in error.message
    refused(
        "CALLBACK_LATE",
        check.verify,
        address("kie"),
        kie_headers(task, str(int(NOW) + 301)),
        kie_callback(task),
        now=NOW,
    )
    # A fresh delivery of the same task (Kie's retry has a new timestamp) is accepted.
    again = str(int(NOW) + 30)
    event = check.verify(
        address("kie"), kie_headers(task, again), kie_callback(task, "fail"), now=NOW + 30
    )
    assert event.state == "failed"


def test_unreadable_callbacks_are_refused_before_anything_else() -> None:
    check = verifier("kie/seedance-1.5-pro", KIE_KEY)
    for body in (b"not json", b"[1, 2]", json.dumps({"data": {"state": "success"}}).encode()):
        error = refused("CALLBACK_UNREADABLE", check.verify, address("kie"), {}, body, now=NOW)
        assert error.status_code == 400


# -- Replicate: Standard Webhooks --------------------------------------------------------------


def test_standard_webhooks_reference_vector() -> None:
    signature = standard_webhook_signature(
        WHSEC, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def replicate_delivery(
    webhook_id: str, stamp: str, body: bytes, secret: str = WHSEC
) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1,bm90LWEtc2lnbmF0dXJl "
        + standard_webhook_signature(secret, webhook_id, stamp, body),
    }


def test_replicate_callbacks_valid_forged_replayed_and_late() -> None:
    check = verifier("replicate/flux-schnell", WHSEC)
    body = json.dumps({"id": "p-1", "status": "succeeded", "output": ["u"]}).encode()
    stamp = str(int(NOW))
    event = check.verify(
        address("replicate"), replicate_delivery("msg_1", stamp, body), body, now=NOW
    )
    assert (event.task_id, event.state, event.signed_body) == ("p-1", "success", True)
    refused(
        "CALLBACK_REPLAYED",
        check.verify,
        address("replicate"),
        replicate_delivery("msg_1", stamp, body),
        body,
        now=NOW + 1,
    )
    # The body is signed: changing it breaks the signature.
    tampered = body.replace(b"succeeded", b"failed")
    refused(
        "CALLBACK_FORGED",
        check.verify,
        address("replicate"),
        replicate_delivery("msg_2", stamp, body),
        tampered,
        now=NOW,
    )
    refused(
        "CALLBACK_FORGED",
        check.verify,
        address("replicate"),
        replicate_delivery("msg_3", stamp, body, secret="whsec_c2VjcmV0"),
        body,
        now=NOW,
    )
    refused("CALLBACK_FORGED", check.verify, address("replicate"), {}, body, now=NOW)
    refused(
        "CALLBACK_LATE",
        check.verify,
        address("replicate"),
        replicate_delivery("msg_4", str(int(NOW) - 3600), body),
        body,
        now=NOW,
    )


# -- fal and providers without a configured secret: the URL token alone -----------------------


def test_without_a_provider_signature_the_url_token_and_replay_guard_decide() -> None:
    guard = ReplayGuard()
    check = verifier("fal/birefnet", None, guard)
    body = json.dumps({"request_id": "r-1", "status": "ERROR", "error": "boom"}).encode()
    event = check.verify(address("fal"), {}, body, now=NOW)
    assert (event.task_id, event.state, event.signed_body) == ("r-1", "failed", False)
    refused("CALLBACK_REPLAYED", check.verify, address("fal"), {}, body, now=NOW + 10)
    ok = json.dumps({"request_id": "r-1", "status": "OK", "payload": {}}).encode()
    assert check.verify(address("fal"), {}, ok, now=NOW + 10).state == "success"
    # Kie without its webhookHmacKey configured: its headers cannot be checked, the URL is.
    kie = verifier("kie/seedance-1.5-pro", None, guard)
    event = kie.verify(address("kie"), {"X-Webhook-Signature": "anything"}, kie_callback(), now=NOW)
    assert event.state == "success"


def test_the_replay_guard_forgets_only_what_lateness_refuses_anyway() -> None:
    guard = ReplayGuard(max_entries=2)
    guard.check("a", until=NOW + 10, now=NOW)
    refused("CALLBACK_REPLAYED", guard.check, "a", until=NOW + 10, now=NOW + 10)
    guard.check("b", until=NOW + 100, now=NOW)
    # Full: "a" has run out by now and is dropped to make room; "b" has not.
    guard.check("c", until=NOW + 100, now=NOW + 11)
    assert len(guard) == 2
    busy = refused("CALLBACK_BUSY", guard.check, "d", until=NOW + 100, now=NOW + 12)
    assert busy.status_code == 503
    refused("CALLBACK_REPLAYED", guard.check, "b", until=NOW + 100, now=NOW + 12)
