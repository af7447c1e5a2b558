"""The async Python SDK against a live server (the sync one is exercised by the CLI tests)."""

from __future__ import annotations

import asyncio
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from conveyor.client import ApiError, AsyncConveyor
from tests.integration.conftest import Serve
from tests.support.adapters import PollingModel


async def test_async_client_creates_follows_and_reads_a_job(serve: Serve) -> None:
    model = PollingModel()
    async with serve(model) as http, AsyncConveyor(str(http.base_url)) as client:
        job = await client.create_job(
            model="test/poll", items=[{"n": 1}, {"n": 2}], idempotency_key="sdk-1"
        )
        again = await client.create_job(
            model="test/poll", items=[{"n": 1}, {"n": 2}], idempotency_key="sdk-1"
        )
        assert again["id"] == job["id"]
        seen: list[dict[str, Any]] = []

        def progress(data: dict[str, Any]) -> None:
            seen.append(data)
            model.finish_all = True  # let the provider finish once we are following

        finished = await client.wait(job["id"], timeout=30, on_progress=progress)
        results = await client.results(job["id"])
        with pytest.raises(ApiError) as missing:
            await client.get_job("no-such-job")
    assert finished["status"] == "completed"
    assert seen  # progress was reported while following the event stream
    assert [item["status"] for item in results["items"]] == ["completed", "completed"]
    assert missing.value.status == 404
    assert missing.value.code == "JOB_NOT_FOUND"


PROGRESS_KEYS = {
    "job_id",
    "status",
    "total",
    "completed",
    "failed",
    "cancelled",
    "pending",
    "percent",
}


class NoEventStream(httpx.AsyncBaseTransport):
    """The live server, reached as if a proxy cut every event stream: ``wait`` must poll."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            raise httpx.ReadError("cut by a proxy", request=request)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def test_wait_reports_one_progress_shape_following_events_or_polling(serve: Serve) -> None:
    model = PollingModel()
    reports: dict[str, list[dict[str, Any]]] = {"followed": [], "polled": []}

    def followed_progress(data: dict[str, Any]) -> None:
        reports["followed"].append(data)
        model.finish_all = True

    async with (
        serve(model) as http,
        AsyncConveyor(str(http.base_url)) as follower,
        AsyncConveyor(str(http.base_url), transport=NoEventStream()) as poller,
    ):
        followed = await follower.create_job(model="test/poll", items=[{"n": 1}, {"n": 2}])
        polled = await poller.create_job(model="test/poll", items=[{"n": 3}])
        await follower.wait(followed["id"], timeout=30, on_progress=followed_progress)
        await poller.wait(
            polled["id"], timeout=30, poll_interval=0.05, on_progress=reports["polled"].append
        )
    for job, seen in ((followed, reports["followed"]), (polled, reports["polled"])):
        assert seen
        assert all(set(report) == PROGRESS_KEYS for report in seen)
        assert {report["job_id"] for report in seen} == {job["id"]}
        assert seen[-1]["status"] == "completed"
        assert seen[-1]["percent"] == 100
    assert reports["followed"][0]["status"] != "completed"  # the first snapshot came at once


def readme_sdk_example() -> str:
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = text.split("## Python SDK", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readme_sdk_example_runs(
    serve: Serve,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = readme_sdk_example()
    assert 'api_key="cvk_..."' in example
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "photo.jpg", "JPEG")
    monkeypatch.chdir(tmp_path)
    async with serve() as http:
        # Open mode on loopback: the same code, without a key.
        code = example.replace("http://127.0.0.1:8000", str(http.base_url)).replace(
            'api_key="cvk_..."', "api_key=None"
        )
        await asyncio.to_thread(exec, compile(code, "README.md", "exec"), {})
    with zipfile.ZipFile(tmp_path / "results.zip") as archive:
        names = archive.namelist()
    assert "results.json" in names
    assert any(name.endswith(".jpg") for name in names)
    assert capsys.readouterr().out.splitlines()[-1] == "completed 100 %"


async def test_estimate_job_answers_a_dry_run_and_creates_nothing(serve: Serve) -> None:
    async with serve(PollingModel()) as http, AsyncConveyor(str(http.base_url)) as client:
        estimate = await client.estimate_job(model="local/tts", items=[{"text": "hello"}] * 3)
        with pytest.raises(ApiError) as refused:
            await client.estimate_job(model="local/tts", items=[{}])
        listed = await client.list_jobs()
    assert estimate["dry_run"] is True
    assert estimate["count"] == 3
    assert estimate["models"] == ["local/tts"]
    assert refused.value.status == 422
    assert listed["data"] == []
