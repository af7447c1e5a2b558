"""HttpModelAdapter against a scripted provider over real HTTP (127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import aiohttp
import pytest
from provider_fakes import (
    JPEG,
    PNG,
    Checkpoints,
    FakeProvider,
    Recorded,
    Reply,
    make_adapter,
    make_call,
    make_spec,
)

from conveyor.core.clock import ManualClock
from conveyor.errors import ValidationFailed
from conveyor.execution.files import ItemFiles
from conveyor.net import UrlRefused
from conveyor.providers.base import FileInput, ProviderState
from conveyor.providers.errors import (
    ModelUnavailable,
    PermanentProviderError,
    ProviderCancelled,
    RateLimited,
    RetryableProviderError,
)
from conveyor.providers.http import HttpModelAdapter
from conveyor.providers.limits import ProviderLimits
from tests.support.item_files import content_of

RUNNING = Reply(json={"status": "running"})


def done(url: str) -> Reply:
    return Reply(json={"status": "done", "result": [url]})


def serve_png(provider: FakeProvider) -> str:
    provider.on("GET", "/cdn/out.png", Reply(body=PNG, content_type="image/png"))
    return f"{provider.base_url}/cdn/out.png"


async def test_submit_checkpoints_before_polling_then_stores_the_result(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    provider.on("POST", "/tasks", Reply(json={"id": "t1", "status": "queued"}))
    provider.on("GET", "/tasks/t1", RUNNING, RUNNING, done(url))
    adapter = make_adapter(make_spec(), provider, session, clock)
    checkpoint = Checkpoints(provider)

    output = await adapter.run(make_call(files), resume=None, checkpoint=checkpoint)

    assert [s.external_task_id for s in checkpoint.states] == ["t1"]
    assert checkpoint.requests_before == [1]  # committed after submit, before any poll
    (submit,) = provider.calls("POST", "/tasks")
    assert submit.json == {"prompt": "a red fox", "width": 512}
    assert submit.headers["authorization"] == "Bearer k-123"
    assert len(provider.calls("GET", "/tasks/t1")) == 3
    (stored,) = output.files
    assert stored.mime_type == "image/png"
    assert await content_of(files, stored) == PNG
    # Polling started short and backed off toward the 2 s interval, with jitter.
    assert clock.sleeps[0] == pytest.approx(0.5, rel=0.11)
    assert clock.sleeps[1] == pytest.approx(0.75, rel=0.11)


async def test_a_resumed_call_polls_and_never_submits(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    provider.on("GET", "/tasks/t9", done(url))
    adapter = make_adapter(make_spec(), provider, session, clock)
    checkpoint = Checkpoints()
    state = ProviderState("t9", {"model_id": "acme/paint", "saved": {}})

    output = await adapter.run(make_call(files), resume=state, checkpoint=checkpoint)

    assert output.files
    assert provider.calls("POST", "/tasks") == []
    assert checkpoint.states == []
    assert clock.sleeps[0] == 0  # a resumed task is looked at at once


async def test_resume_refuses_another_models_state(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    adapter = make_adapter(make_spec(), provider, session, clock)
    state = ProviderState("t9", {"model_id": "other/model"})
    with pytest.raises(PermanentProviderError, match="cannot resume"):
        await adapter.run(make_call(files), resume=state, checkpoint=Checkpoints())


async def test_404_while_fresh_is_tolerated_then_fatal(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    missing = Reply(status=404, json={"error": "request not found"})
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", missing, missing, done(url))
    adapter = make_adapter(make_spec(), provider, session, clock)
    assert (await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())).files

    provider.on("POST", "/tasks", Reply(json={"id": "t2"}))
    provider.on("GET", "/tasks/t2", missing)
    with pytest.raises(PermanentProviderError) as caught:
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert caught.value.http_status == 404
    assert "task t2 not found" in caught.value.message
    assert len(provider.calls("GET", "/tasks/t2")) == 3  # grace of 2, then the fatal one


async def test_a_404_after_the_task_was_seen_is_not_tolerated(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", RUNNING, Reply(status=404, json={}))
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(PermanentProviderError, match="not found"):
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())


@pytest.mark.parametrize(
    ("status", "meaning"),
    [(401, "invalid API key"), (402, "top up your balance"), (403, None), (400, None)],
)
async def test_client_errors_fail_at_once_with_the_providers_message(
    provider: FakeProvider,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    status: int,
    meaning: str | None,
) -> None:
    provider.on("POST", "/tasks", Reply(status=status, json={"error": "nope, says acme"}))
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(PermanentProviderError) as caught:
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert caught.value.http_status == status
    assert "nope, says acme" in caught.value.message
    assert f"HTTP {status}" in caught.value.message
    if meaning:
        assert meaning in caught.value.message
    assert len(provider.calls("POST", "/tasks")) == 1  # never retried


async def test_429_honours_retry_after_then_succeeds(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    limited = Reply(status=429, json={"error": "slow down"}, headers={"Retry-After": "3"})
    provider.on("POST", "/tasks", limited, Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", limited, done(url))
    adapter = make_adapter(make_spec(), provider, session, clock)
    output = await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert output.files
    assert len(provider.calls("POST", "/tasks")) == 2
    # Both the submit retry and the poll after the 429 waited at least Retry-After.
    assert sum(1 for s in clock.sleeps if s >= 3) >= 2


async def test_5xx_backs_off_and_gives_up_after_the_bounded_retries(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    provider.on("POST", "/tasks", Reply(status=502, body=b"<html>Bad gateway</html>"))
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(RetryableProviderError) as caught:
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert not isinstance(caught.value, RateLimited)
    assert "HTTP 502: Bad gateway" in caught.value.message
    assert len(provider.calls("POST", "/tasks")) == 3  # 1 + retries(2)
    assert len(clock.sleeps) == 2
    assert clock.sleeps[1] > clock.sleeps[0] / 2  # exponential, jittered


async def test_poll_errors_are_tolerated_up_to_max_errors(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    broken = Reply(status=500, json={"error": "db down"})
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", broken, broken, RUNNING, broken, broken, done(url))
    adapter = make_adapter(make_spec(), provider, session, clock)
    assert (await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())).files

    provider.on("POST", "/tasks", Reply(json={"id": "t2"}))
    provider.on("GET", "/tasks/t2", broken)
    with pytest.raises(RetryableProviderError, match="3 polls in a row failed"):
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())


async def test_a_failed_task_carries_the_providers_error(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", Reply(json={"status": "failed", "error": "NSFW prompt"}))
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(PermanentProviderError) as caught:
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert caught.value.message == "Acme: acme/paint failed: NSFW prompt"
    assert caught.value.code == "PROVIDER_TASK_FAILED"


async def test_unknown_statuses_keep_polling_with_one_warning(
    provider: FakeProvider,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = serve_png(provider)
    odd = Reply(json={"status": "warming_up"})
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", odd, odd, odd, done(url))
    adapter = make_adapter(make_spec(), provider, session, clock)
    with caplog.at_level(logging.WARNING, logger="conveyor.providers.http"):
        assert (await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())).files
    warnings = [r for r in caplog.records if "warming_up" in r.getMessage()]
    assert len(warnings) == 1


async def test_cancellation_is_seen_at_the_next_poll_and_cancels_at_the_provider(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", RUNNING)
    provider.on("POST", "/tasks/t1/cancel", Reply(json={}))
    adapter = make_adapter(make_spec(), provider, session, clock)

    def cancelled() -> bool:
        return len(provider.calls("GET", "/tasks/t1")) >= 2

    with pytest.raises(ProviderCancelled):
        await adapter.run(
            make_call(files, cancelled=cancelled), resume=None, checkpoint=Checkpoints()
        )
    assert len(provider.calls("POST", "/tasks/t1/cancel")) == 1
    assert len(provider.calls("GET", "/tasks/t1")) == 2


async def test_a_call_cancelled_before_submit_sends_nothing(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(ProviderCancelled):
        await adapter.run(
            make_call(files, cancelled=lambda: True), resume=None, checkpoint=Checkpoints()
        )
    assert provider.requests == []


async def test_max_wait_gives_up_and_cancels(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", RUNNING)
    provider.on("POST", "/tasks/t1/cancel", Reply(json={}))
    adapter = make_adapter(make_spec(), provider, session, clock)
    start = clock.monotonic()
    with pytest.raises(PermanentProviderError) as caught:
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert caught.value.code == "PROVIDER_TIMEOUT"
    assert 60 < clock.monotonic() - start < 65
    assert len(provider.calls("POST", "/tasks/t1/cancel")) == 1
    # Steady state: about one poll per 2 s interval.
    assert 28 <= len(provider.calls("GET", "/tasks/t1")) <= 36


async def test_missing_variables_fail_before_any_request(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(
        ValidationFailed, match="missing template variables for acme/paint submit: prompt"
    ):
        await adapter.run(make_call(files, {}), resume=None, checkpoint=Checkpoints())
    assert provider.requests == []


async def test_inputs_are_checked_against_the_spec(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    spec = make_spec(
        model={"inputs": {"width": {"type": "integer"}, "style": {"type": "string", "enum": ["a"]}}}
    )
    adapter = make_adapter(spec, provider, session, clock)
    call = make_call(files, {"prompt": "x", "width": "wide", "style": "b"})
    with pytest.raises(ValidationFailed) as caught:
        await adapter.run(call, resume=None, checkpoint=Checkpoints())
    assert caught.value.details["errors"] == [
        "width: expected integer, got str",
        "style: must be one of ['a'], got 'b'",
    ]
    assert provider.requests == []


async def test_file_inputs_become_urls_and_lists_splice(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    spec = make_spec(
        model={
            "inputs": {"image": {"type": "files"}},
            "submit": {"body": {"prompt": "{{prompt}}", "urls": ["{{image}}"]}},
        }
    )
    provider.on("POST", "/tasks", Reply(json={"id": "t1", "status": "done", "result": [url]}))
    adapter = make_adapter(spec, provider, session, clock)
    # A stored file with no public link (local storage) goes inline; a client's URL as given.
    earlier = await files.store(JPEG)
    await files.record(earlier)
    images = [FileInput(asset_id=earlier.asset_id), FileInput(url="https://img.example/2.jpg")]
    await adapter.run(
        make_call(files, {"prompt": "p", "image": images}), resume=None, checkpoint=Checkpoints()
    )
    (submit,) = provider.calls("POST", "/tasks")
    inline = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    assert submit.json["urls"] == [inline, "https://img.example/2.jpg"]


@pytest.mark.parametrize(
    "result_url",
    [
        "http://127.0.0.2:{port}/cdn/out.png",  # the fake's port on another loopback address
        "http://169.254.169.254/latest/meta-data/",
    ],
)
async def test_a_result_url_is_fetched_only_if_the_fetch_policy_allows_it(
    provider: FakeProvider,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    result_url: str,
) -> None:
    serve_png(provider)
    port = provider.base_url.rsplit(":", 1)[1]
    answer = {"id": "t1", "status": "done", "result": [result_url.format(port=port)]}
    provider.on("POST", "/tasks", Reply(json=answer))
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(UrlRefused):
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert provider.calls("GET", "/cdn/out.png") == []


async def test_a_final_status_in_the_submit_answer_skips_polling(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    provider.on("POST", "/tasks", Reply(json={"id": "t1", "status": "done", "result": [url]}))
    adapter = make_adapter(make_spec(), provider, session, clock)
    checkpoint = Checkpoints()
    output = await adapter.run(make_call(files), resume=None, checkpoint=checkpoint)
    assert output.files
    assert len(checkpoint.states) == 1
    assert provider.calls("GET", "/tasks/t1") == []


@pytest.mark.parametrize("shape", ["url", "data_url", "base64", "urlsafe_base64", "full_response"])
async def test_results_as_url_data_url_or_bare_base64_become_assets(
    provider: FakeProvider,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    shape: str,
) -> None:
    url = serve_png(provider)
    encoded = base64.b64encode(JPEG).decode()
    answer: dict[str, Any] = {"status": "done"}
    if shape == "url":
        answer["result"] = [url]
    elif shape == "data_url":
        answer["result"] = ["data:image/png;base64," + encoded]  # lies about the type
    elif shape == "base64":
        answer["result"] = [encoded[:20] + "\n" + encoded[20:]]
    elif shape == "urlsafe_base64":
        answer["result"] = [base64.urlsafe_b64encode(JPEG).decode().rstrip("=")]
    else:
        answer["output"] = {"url": url}
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", Reply(json=answer))
    adapter = make_adapter(make_spec(), provider, session, clock)
    (stored,) = (await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())).files
    expected = PNG if shape in ("url", "full_response") else JPEG
    assert await content_of(files, stored) == expected
    assert stored.mime_type == ("image/png" if expected is PNG else "image/jpeg")


async def test_a_result_that_is_neither_url_nor_base64_is_a_clear_error(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on(
        "GET", "/tasks/t1", Reply(json={"status": "done", "result": ["not a file, sorry!"]})
    )
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(PermanentProviderError, match="neither a URL nor base64"):
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())


async def test_success_without_a_result_names_the_paths(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on("GET", "/tasks/t1", Reply(json={"status": "done", "result": []}))
    adapter = make_adapter(make_spec(), provider, session, clock)
    with pytest.raises(
        PermanentProviderError, match=r"holds no file at result\[0\] then output.url"
    ):
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())


async def test_files_text_and_json_results_and_cost(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    provider.on("POST", "/tasks", Reply(json={"id": "t1"}))
    provider.on(
        "GET",
        "/tasks/t1",
        Reply(
            json={
                "status": "done",
                "result": [url, url],
                "text": '```json\n{"brand": "Acme"}\n```',
                "usage": {"seconds": 4},
            }
        ),
    )
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"result": {"kind": "files", "paths": ["result"]}, "price": {"per_call": 0.5}}, 0.5),
        (
            {
                "result": {"kind": "text", "paths": ["text"], "also_json": True},
                "price": {"per_unit": 0.25, "unit": "width"},
            },
            128.0,
        ),
        (
            {
                "result": {"kind": "json", "paths": ["text|json"]},
                "price": {"per_unit": 0.1, "unit_path": "usage.seconds"},
            },
            0.4,
        ),
        # Per file kept: both result URLs were stored, so two are charged.
        (
            {
                "result": {"kind": "files", "paths": ["result"]},
                "price": {"per_file": 0.03, "currency": "EUR"},
            },
            0.06,
        ),
    ]
    outputs = []
    for model, cost in cases:
        adapter = make_adapter(make_spec(model=model), provider, session, clock)
        output = await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
        assert output.cost == pytest.approx(cost)
        outputs.append(output)
    assert len(outputs[0].files) == 2
    assert len(outputs[3].files) == 2
    assert outputs[3].currency == "EUR"
    assert outputs[0].currency == "USD"
    assert outputs[1].text == '```json\n{"brand": "Acme"}\n```'
    assert outputs[1].data == {"brand": "Acme"}
    assert outputs[2].data == {"brand": "Acme"}


async def test_sync_models_answer_in_the_submit_call(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    spec = make_spec(
        model={
            "mode": "sync",
            "poll": None,
            "status": None,
            "cancel": None,
            "submit": {"task_id": None, "path": "/chat"},
            "result": {"kind": "text", "paths": ["choices[0].message.content"]},
        }
    )
    provider.on("POST", "/chat", Reply(json={"choices": [{"message": {"content": "A fox."}}]}))
    adapter = make_adapter(spec, provider, session, clock)
    checkpoint = Checkpoints()
    output = await adapter.run(make_call(files), resume=None, checkpoint=checkpoint)
    assert output.text == "A fox."
    assert checkpoint.states == []


async def test_binary_answers_are_stored_as_they_are(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 28
    spec = make_spec(
        model={
            "mode": "sync",
            "poll": None,
            "status": None,
            "cancel": None,
            "submit": {"task_id": None, "path": "/speech", "response": "binary"},
            "result": {"kind": "file", "paths": []},
        }
    )
    provider.on("POST", "/speech", Reply(body=wav, content_type="audio/mpeg"))
    adapter = make_adapter(spec, provider, session, clock)
    (stored,) = (await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())).files
    # The bytes as the provider sent them; their type is the store's business (it sniffs).
    assert await content_of(files, stored) == wav
    assert "accept" not in provider.requests[0].headers or (
        provider.requests[0].headers["accept"] != "application/json"
    )


def fal_like_spec() -> Any:
    return make_spec(
        model={
            "submit": {"save": {"status_url": "status_url", "response_url": "response_url"}},
            "poll": {"path": None, "url": "{{state.status_url}}"},
            "status": {"running": ["IN_QUEUE"], "success": ["COMPLETED"], "failed_when": ["error"]},
            "fetch_result": {"url": "{{state.response_url}}"},
            "result": {"kind": "file", "paths": ["images[0].url"]},
            "cancel": None,
        }
    )


async def test_urls_from_the_submit_answer_drive_polling_and_result_fetch(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    url = serve_png(provider)
    base = provider.base_url
    provider.on(
        "POST",
        "/tasks",
        Reply(
            json={"id": "r1", "status_url": f"{base}/q/r1/status", "response_url": f"{base}/q/r1"}
        ),
    )
    provider.on(
        "GET",
        "/q/r1/status",
        Reply(status=202, json={"status": "IN_QUEUE"}),
        Reply(json={"status": "COMPLETED"}),
    )
    provider.on("GET", "/q/r1", Reply(json={"images": [{"url": url}]}))
    adapter = make_adapter(fal_like_spec(), provider, session, clock)
    checkpoint = Checkpoints()
    output = await adapter.run(make_call(files), resume=None, checkpoint=checkpoint)
    assert output.files
    saved = checkpoint.states[0].data["saved"]
    assert saved == {"status_url": f"{base}/q/r1/status", "response_url": f"{base}/q/r1"}
    assert provider.calls("GET", "/q/r1")[0].headers["authorization"] == "Bearer k-123"

    # A resumed call finds the URLs in the saved state.
    provider.on("GET", "/q/r1/status", Reply(json={"status": "COMPLETED", "error": "runner died"}))
    with pytest.raises(PermanentProviderError, match="failed: runner died"):
        await adapter.run(make_call(files), resume=checkpoint.states[0], checkpoint=Checkpoints())


async def test_the_key_is_never_sent_to_a_url_on_another_host(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    provider.on(
        "POST",
        "/tasks",
        Reply(json={"id": "r1", "status_url": "https://evil.example/s", "response_url": "x"}),
    )
    adapter = make_adapter(fal_like_spec(), provider, session, clock)
    with pytest.raises(PermanentProviderError, match="refusing to send the API key"):
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert len(provider.requests) == 1


async def test_body_status_envelopes_are_read_like_http_statuses(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    spec = make_spec(
        {"errors": {"envelope": {"code_path": "code", "message_path": "msg"}, "retryable": [455]}},
        model={"submit": {"task_id": "data.taskId"}},
    )
    provider.on(
        "POST", "/tasks", Reply(json={"code": 402, "msg": "Insufficient Credits", "data": None})
    )
    adapter = make_adapter(spec, provider, session, clock)
    with pytest.raises(PermanentProviderError) as caught:
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert caught.value.http_status == 402
    assert "top up your balance (HTTP 402: Insufficient Credits)" in caught.value.message

    provider.on("POST", "/tasks", Reply(json={"code": 455, "msg": "maintenance"}))
    with pytest.raises(RetryableProviderError, match="maintenance"):
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())


@pytest.mark.parametrize(
    ("auth", "check"),
    [
        (
            {"type": "header", "header": "Authorization", "prefix": "Key "},
            lambda r: r.headers["authorization"] == "Key k-123",
        ),
        ({"type": "header", "header": "X-Api-Key"}, lambda r: r.headers["x-api-key"] == "k-123"),
        ({"type": "query", "param": "key"}, lambda r: r.query["key"] == "k-123"),
        ({"type": "none"}, lambda r: "authorization" not in r.headers),
    ],
)
async def test_auth_styles(
    provider: FakeProvider,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    auth: dict[str, Any],
    check: Any,
) -> None:
    url = serve_png(provider)
    provider.on("POST", "/tasks", Reply(json={"id": "t1", "status": "done", "result": [url]}))
    adapter = make_adapter(make_spec({"auth": auth}), provider, session, clock)
    await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert check(provider.calls("POST", "/tasks")[0])


@pytest.mark.parametrize(
    "idempotency", [{"header": "Idempotency-Key"}, {"body_field": "meta.request_key"}]
)
async def test_idempotency_key_is_sent_where_the_spec_says(
    provider: FakeProvider,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    idempotency: dict[str, str],
) -> None:
    url = serve_png(provider)
    provider.on("POST", "/tasks", Reply(json={"id": "t1", "status": "done", "result": [url]}))
    adapter = make_adapter(make_spec(model={"idempotency": idempotency}), provider, session, clock)
    await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    submit: Recorded = provider.calls("POST", "/tasks")[0]
    if "header" in idempotency:
        assert submit.headers["idempotency-key"] == "step-run-42"
    else:
        assert submit.json["meta"] == {"request_key": "step-run-42"}


async def test_without_a_key_the_model_is_unavailable_with_the_variable_to_set(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    adapter = make_adapter(make_spec(), provider, session, clock, api_key=None)
    availability = adapter.availability()
    assert not availability.available
    assert availability.reason == "no API key for Acme: set ACME_KEY"
    assert availability.enable_with == "ACME_KEY"
    with pytest.raises(ModelUnavailable, match="set ACME_KEY"):
        await adapter.run(make_call(files), resume=None, checkpoint=Checkpoints())
    assert provider.requests == []

    spec = make_spec({"auth": {"optional_with_custom_base_url": True}})
    local = HttpModelAdapter(
        spec,
        "acme/paint",
        session,
        ProviderLimits.from_spec(spec, clock=clock),
        base_url="http://127.0.0.1:11434/v1",
        env={},
    )
    assert local.availability().available


async def test_env_defaults_override_model_names(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    spec = make_spec(model={"defaults": {"model": "gpt-4o-mini"}, "env_defaults": {"model": "M"}})
    limits = ProviderLimits.from_spec(spec, clock=clock)
    adapter = HttpModelAdapter(spec, "acme/paint", session, limits, env={"M": "llava:13b"})
    assert adapter.defaults["model"] == "llava:13b"


async def test_hundreds_of_concurrent_tasks_poll_side_by_side(
    provider: FakeProvider, session: aiohttp.ClientSession, files: ItemFiles
) -> None:
    url = serve_png(provider)
    submitted = 0
    polls: dict[str, int] = {}

    def submit(_: Recorded) -> Reply:
        nonlocal submitted
        submitted += 1
        return Reply(json={"id": f"t{submitted}"})

    def poll(request: Recorded) -> Reply:
        task = request.path.rsplit("/", 1)[1]
        polls[task] = polls.get(task, 0) + 1
        if polls[task] >= 3:
            return Reply(json={"status": "done", "result": [url]})
        return RUNNING

    provider.on("POST", "/tasks", submit)
    provider.on_prefix("GET", "/tasks/", poll)
    # Real time here (a shared virtual clock would add up every task's sleeps): intervals
    # of a few milliseconds keep it quick.
    spec = make_spec(
        {"limits": {"max_in_flight": 50}},
        model={"poll": {"initial_interval": 0.005, "interval": 0.01, "max_interval": 0.05}},
    )
    limits = ProviderLimits.from_spec(spec)
    adapter = HttpModelAdapter(
        spec, "acme/paint", session, limits, api_key="k", base_url=provider.base_url, env={}
    )
    outputs = await asyncio.gather(
        *(adapter.run(make_call(files), resume=None, checkpoint=Checkpoints()) for _ in range(300))
    )
    assert all(len(output.files) == 1 for output in outputs)
    assert submitted == 300
    assert sorted(set(polls.values())) == [3]
    assert adapter.limits.health().in_flight == 0
    assert adapter.limits.health().active_tasks == 0
