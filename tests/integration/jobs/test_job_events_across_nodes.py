"""A job followed on an API node that runs no workers (``serve --no-workers``): its items run
on another node, whose item events never reach this one, yet the stream reports each item
when it ends, not all of them when the job finishes. Two apps on one database, SQLite and
PostgreSQL, each with its own event bus as two machines would have."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from conveyor.app import create_app
from tests.integration.conftest import fast_settings
from tests.support.adapters import PollingModel
from tests.support.server import serving


async def test_items_that_end_on_another_node_are_streamed_as_they_end(
    database_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(database_url, tmp_path / "data")
    model = PollingModel()
    api_node = create_app(settings, workers=False, extra_adapters=(PollingModel(),))
    worker_node = create_app(settings, migrate=False, extra_adapters=(model,))
    events: list[tuple[str, dict[str, Any]]] = []
    async with (
        serving(api_node) as api_url,
        serving(worker_node),
        httpx.AsyncClient(base_url=api_url, timeout=30) as client,
    ):
        created = await client.post(
            "/v1/jobs", json={"model": "test/poll", "items": [{"n": 1}, {"n": 2}, {"n": 3}]}
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        async def follow() -> None:
            async with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
                name = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        events.append((name, json.loads(line[5:])))

        follower = asyncio.create_task(follow())
        async with asyncio.timeout(30):
            while len(model.submitted) < 3:
                await asyncio.sleep(0.05)
        model.finish.add(model.submitted[0])
        # The other two items are still at the "provider": the job is far from finished.
        async with asyncio.timeout(20):
            while not any(name.startswith("item.") for name, _ in events):
                await asyncio.sleep(0.05)
        first_item = next(data for name, data in events if name.startswith("item."))
        assert all(name != "finished" for name, _ in events)
        model.finish_all = True
        await asyncio.wait_for(follower, 30)
    assert first_item["job_id"] == job_id
    names = [name for name, _ in events]
    assert names.count("item.completed") == 3
    assert names[-1] == "finished"
