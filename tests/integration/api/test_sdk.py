"""The async Python SDK against a live server (the sync one is exercised by the CLI tests)."""

from __future__ import annotations

from typing import Any

import pytest

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
