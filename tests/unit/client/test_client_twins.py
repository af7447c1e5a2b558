"""The sync and async clients are twins: same methods and signatures, documented, and for
every call the same request on the wire and the same answer (or the same error)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_fakes import PROGRESS_KEYS, REPORTED, SHARED_KEY, FakeServer

from conveyor.client import (
    ApiError,
    AsyncConveyor,
    AsyncDescriptionsClient,
    Conveyor,
    DescriptionsClient,
    DescriptionsError,
    DescriptionsTimeout,
)
from conveyor.client.descriptions import make_lot

PAIRS = [(Conveyor, AsyncConveyor), (DescriptionsClient, AsyncDescriptionsClient)]
CLOSE = {"close": "aclose"}
# Pure computations need no transport, so the async twin offers them as plain methods.
PURE = {"generate_signature"}
BASE = "http://conveyor.test"
Step = tuple[str, tuple[Any, ...], dict[str, Any]]


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def as_async(annotation: str) -> str:
    """The async twin's annotation for a sync one: only the transport's types differ."""
    annotation = annotation.replace("httpx.BaseTransport", "httpx.AsyncBaseTransport")
    return re.sub(r"(?<!Async)Iterator\[", "AsyncIterator[", annotation)


def shape(function: Callable[..., Any]) -> list[tuple[str, Any, Any, str]]:
    signature = inspect.signature(function)
    parameters = [
        (p.name, p.kind, p.default, as_async(str(p.annotation)))
        for p in signature.parameters.values()
    ]
    return [*parameters, ("return", None, None, as_async(str(signature.return_annotation)))]


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_twins_have_the_same_methods_and_signatures(sync_cls: type, async_cls: type) -> None:
    sync_methods, async_methods = public_methods(sync_cls), public_methods(async_cls)
    assert {CLOSE.get(name, name) for name in sync_methods} == set(async_methods)
    assert shape(sync_cls.__init__) == shape(async_cls.__init__)
    for name, method in sync_methods.items():
        twin = async_methods[CLOSE.get(name, name)]
        assert shape(method) == shape(twin), name
        if name in PURE:
            assert not inspect.iscoroutinefunction(twin), name
        else:
            assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name


@pytest.mark.parametrize("cls", [cls for pair in PAIRS for cls in pair])
def test_every_public_method_has_a_docstring(cls: type) -> None:
    undocumented = [name for name, method in public_methods(cls).items() if not method.__doc__]
    assert undocumented == []
    assert cls.__doc__


def native_steps(upload: Path, downloads: Path) -> list[Step]:
    return [
        ("request_json", ("GET", "/v1/models"), {"params": {"kind": "image"}}),
        (
            "create_job",
            (),
            {
                "model": "test/poll",
                "items": [{"n": 1}, {"n": 2}],
                "options": {"size": "1024x1024"},
                "languages": ["en", "de"],
                "priority": 3,
                "webhook_url": "https://hooks.test/done",
                "idempotency_key": "batch-42",
                "wait": 5,
            },
        ),
        ("create_job", (), {"recipe": "image-finish", "items": [{"image": {"asset_id": "a"}}]}),
        ("get_job", ("job-1",), {}),
        ("get_job", ("missing",), {}),
        ("list_jobs", (), {"status": "completed", "limit": 10, "cursor": "c-1"}),
        ("list_jobs", (), {}),
        ("results", ("job-1",), {}),
        ("cancel", ("job-1",), {}),
        ("retry", ("job-1",), {}),
        ("upload", (upload,), {}),
        ("asset_content", ("asset-1",), {}),
        ("download", ("job-1", downloads / "results.zip"), {}),
        ("download", ("job-1", downloads / "results.json"), {"format": "json"}),
        ("download", ("missing", downloads / "none.zip"), {}),
        ("events", ("job-1",), {}),
        ("wait", ("job-1",), {}),
        ("wait", ("job-1",), {"timeout": 60, "poll_interval": 0}),
    ]


def descriptions_steps(downloads: Path) -> list[Step]:
    lots = [make_lot("car-2", ["https://img.test/2.jpg"]), make_lot("car-3", [])]
    return [
        ("generate_signature", (lots,), {}),
        ("sync_generate", ("car-1", ["https://img.test/1.jpg"], "2020 Camry", ["en", "ru"]), {}),
        ("sync_generate", ("slow", ["https://img.test/1.jpg"]), {}),
        ("generate", (lots,), {"languages": ["en", "es"]}),
        ("create_batch_job", (lots, ["en"]), {}),
        ("create_batch_job", (lots[:1],), {}),
        ("get_job_status", ("batch-x",), {}),
        ("get_results", ("batch-running",), {}),
        ("get_results", ("batch-1",), {}),
        ("wait_for_completion", ("batch-1",), {"poll_interval": 0}),
        ("wait_for_completion", ("batch-failed",), {"poll_interval": 0}),
        ("download_results", ("batch-1", downloads / "results.json"), {}),
        ("list_jobs", (), {"status": "completed", "limit": 5, "offset": 10}),
        ("list_jobs", (), {}),
        ("cancel_job", ("batch-1",), {}),
        ("cancel_job", ("batch-done",), {}),
    ]


def outcome_of(value: Any) -> Any:
    """An answer made comparable across runs: files by content, errors by what they say."""
    if isinstance(value, Path):
        return ("file", value.name, value.read_bytes())
    if isinstance(value, BaseException):
        extra = {k: v for k, v in vars(value).items() if k != "__traceback__"}
        return (type(value).__name__, str(value), extra)
    return value


def run_sync(client: Any, steps: list[Step]) -> list[Any]:
    outcomes = []
    for name, args, kwargs in steps:
        try:
            value = getattr(client, name)(*args, **kwargs)
            if inspect.isgenerator(value):
                value = list(value)
        except (ApiError, DescriptionsError, ValueError, TimeoutError) as error:
            value = error
        outcomes.append(outcome_of(value))
    return outcomes


async def run_async(client: Any, steps: list[Step]) -> list[Any]:
    outcomes = []
    for name, args, kwargs in steps:
        try:
            value = getattr(client, name)(*args, **kwargs)
            if inspect.isasyncgen(value):
                value = [event async for event in value]
            elif inspect.isawaitable(value):
                value = await value
        except (ApiError, DescriptionsError, ValueError, TimeoutError) as error:
            value = error
        outcomes.append(outcome_of(value))
    return outcomes


async def test_native_twins_send_the_same_requests_and_read_the_same_answers(
    tmp_path: Path,
) -> None:
    upload = tmp_path / "mug.png"
    upload.write_bytes(b"\x89PNG\r\n\x1a\nmug")
    runs: dict[str, tuple[FakeServer, list[Any]]] = {}
    for mode in ("sync", "async"):
        server, downloads = FakeServer(), tmp_path / mode
        downloads.mkdir()
        steps = native_steps(upload, downloads)
        transport = httpx.MockTransport(server)
        if mode == "sync":
            with Conveyor(BASE, api_key="cvk_test", transport=transport) as sync_client:
                runs[mode] = server, run_sync(sync_client, steps)
        else:
            async with AsyncConveyor(BASE, api_key="cvk_test", transport=transport) as client:
                runs[mode] = server, await run_async(client, steps)
    (sync_server, sync_out), (async_server, async_out) = runs["sync"], runs["async"]
    assert sync_server.requests == async_server.requests
    assert sync_out == async_out

    # And what they both did is right, not just alike.
    assert all(("authorization", "Bearer cvk_test") in r.headers for r in sync_server.requests)
    create = sync_server.requests[1]
    assert (create.method, create.url) == ("POST", f"{BASE}/v1/jobs")
    assert create.body == (
        b'{"items":[{"n":1},{"n":2}],"priority":3,"model":"test/poll",'
        b'"options":{"size":"1024x1024"},"languages":["en","de"],'
        b'"webhook_url":"https://hooks.test/done","idempotency_key":"batch-42","wait":5}'
    )
    assert sync_server.requests[5].url == f"{BASE}/v1/jobs?limit=10&status=completed&cursor=c-1"
    assert b'name="file"; filename="mug.png"' in sync_server.requests[10].body
    assert sync_out[4][:2] == ("ApiError", "404 JOB_NOT_FOUND: no such job")
    assert sync_out[12] == ("file", "results.zip", b"results as zip")
    assert sync_out[14][0] == "ApiError"
    assert [event for event, _ in sync_out[15]] == [
        "job",
        "progress",
        "item.completed",
        "progress",
        "finished",
    ]
    assert sync_out[16]["status"] == sync_out[17]["status"] == "completed"


async def test_descriptions_twins_send_the_same_requests_and_read_the_same_answers(
    tmp_path: Path,
) -> None:
    runs: dict[str, tuple[FakeServer, list[Any]]] = {}
    for mode in ("sync", "async"):
        server, downloads = FakeServer(), tmp_path / mode
        downloads.mkdir()
        steps = descriptions_steps(downloads)
        transport = httpx.MockTransport(server)
        if mode == "sync":
            with DescriptionsClient(
                BASE, SHARED_KEY, client_name="acme", transport=transport
            ) as sync_client:
                runs[mode] = server, run_sync(sync_client, steps)
        else:
            async with AsyncDescriptionsClient(
                BASE, SHARED_KEY, client_name="acme", transport=transport
            ) as client:
                runs[mode] = server, await run_async(client, steps)
    (sync_server, sync_out), (async_server, async_out) = runs["sync"], runs["async"]
    assert sync_server.requests == async_server.requests
    assert sync_out == async_out

    assert sync_out[2][0] == "DescriptionsTimeout"
    assert sync_out[2][2]["job_id"] == "job-slow"
    assert sync_out[4] == "batch-1"
    assert sync_out[5][:2] == (
        "ValueError",
        "a batch needs two or more lots; use sync_generate for one",
    )
    assert sync_out[7] is None  # 202: still running
    assert sync_out[9] == {"job_id": "batch-1", "results": {"lots": []}}
    assert sync_out[10][:2] == ("DescriptionsError", "Job failed: no images")
    assert sync_out[11] == ("file", "results.json", b'{"lots": []}\n')
    assert sync_out[15][:2] == (
        "DescriptionsError",
        'API Error: 409 - {"error":"JOB_FINISHED","message":"finished"}',
    )
    signed = [r for r in sync_server.requests if "/batch-jobs" in r.url]
    assert len(signed) == 4
    assert all(("x-client", "acme") in r.headers for r in signed)
    assert signed[0].url == f"{BASE}/api/v1/batch-jobs?status=completed&limit=5&offset=10"


def test_signed_calls_need_the_client_name() -> None:
    transport = httpx.MockTransport(FakeServer())
    with (
        DescriptionsClient(BASE, SHARED_KEY, transport=transport) as api,
        pytest.raises(ValueError, match="client_name"),
    ):
        api.cancel_job("batch-1")


async def test_a_slow_sync_answer_is_a_timeout_that_names_the_job() -> None:
    transport = httpx.MockTransport(FakeServer())
    async with AsyncDescriptionsClient(BASE, SHARED_KEY, transport=transport) as api:
        with pytest.raises(DescriptionsTimeout) as late:
            await api.sync_generate("slow", [])
    assert late.value.job_id == "job-slow"
    assert "timeout" in str(late.value).lower()


@pytest.mark.parametrize("stream", ["events", "broken", "garbled"])
@pytest.mark.parametrize("timeout", [None, 60.0])
async def test_wait_reports_the_same_progress_whether_it_follows_events_or_polls(
    stream: str, timeout: float | None
) -> None:
    reports: dict[str, list[dict[str, Any]]] = {"sync": [], "async": []}
    finished: dict[str, dict[str, Any]] = {}
    sync_server, async_server = FakeServer(stream=stream), FakeServer(stream=stream)
    with Conveyor(BASE, transport=httpx.MockTransport(sync_server)) as sync_client:
        finished["sync"] = sync_client.wait(
            "job-1", timeout=timeout, poll_interval=0, on_progress=reports["sync"].append
        )
    async with AsyncConveyor(BASE, transport=httpx.MockTransport(async_server)) as client:
        finished["async"] = await client.wait(
            "job-1", timeout=timeout, poll_interval=0, on_progress=reports["async"].append
        )
    assert reports["sync"] == reports["async"] == REPORTED
    assert all(set(report) == PROGRESS_KEYS for report in REPORTED)
    assert finished["sync"] == finished["async"]
    assert finished["sync"]["status"] == "completed"
    polled = stream != "events"
    assert sync_server.polls == async_server.polls == (3 if polled else 0)


async def test_wait_gives_up_at_its_timeout() -> None:
    server = FakeServer(stream="broken")
    with (
        Conveyor(BASE, transport=httpx.MockTransport(server)) as sync_client,
        pytest.raises(TimeoutError, match="job-stuck not finished after 0 s"),
    ):
        sync_client.wait("job-stuck", timeout=0, poll_interval=0)
    async with AsyncConveyor(BASE, transport=httpx.MockTransport(server)) as client:
        with pytest.raises(TimeoutError, match="job-stuck not finished after 0 s"):
            await client.wait("job-stuck", timeout=0, poll_interval=0)


def test_on_progress_gets_one_shape_whatever_the_server_sends() -> None:
    from conveyor.client._native_calls import PROGRESS_KEYS as KEYS
    from conveyor.client._native_calls import WaitRule

    reports: list[dict[str, Any]] = []
    rule = WaitRule("job-1", timeout=None, poll_interval=0, on_progress=reports.append)
    counts = {"total": 4, "completed": 1, "failed": 0, "cancelled": 0, "pending": 3}
    # A progress event with a field this SDK does not know, and one without `percent`.
    rule.event("progress", {"job_id": "job-1", "status": "processing", **counts, "retried": 2})
    rule.event("progress", {"job_id": "job-1", "status": "processing", **counts, "pending": 2})
    # A job snapshot (`job`, `finished`, a poll) with more than progress in it.
    job = {"id": "job-1", "status": "completed", "cost": {"amount": 1}, "error_summary": None}
    rule.polled({**job, "progress": {**counts, "completed": 4, "pending": 0, "percent": 100}})
    assert [tuple(report) for report in reports] == [KEYS, KEYS, KEYS]
    assert [report["percent"] for report in reports] == [25.0, 50.0, 100.0]
    assert all(isinstance(report["percent"], float) for report in reports)
