"""PostgreSQL goes away and comes back (a private cluster, stopped as a crash would stop it).

What is checked: an error that means "the server is away" is told apart from a statement's
own error; a request while the database is down gets a 503 with ``Retry-After`` (not a 500),
and the same request works once it is back; an open event stream stays open through the
outage and reports the job's end on the same connection."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from conveyor.app import create_app
from conveyor.core.db import Database, database_unreachable
from conveyor.core.migrate import upgrade
from tests.integration.conftest import fast_settings
from tests.support.adapters import PollingModel
from tests.support.postgres_cluster import PostgresCluster, create_database
from tests.support.server import serving

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def _error_of(db: Database, statement: str) -> BaseException:
    try:
        async with db.read() as conn:
            await conn.execute(text(statement))
    except Exception as exc:
        return exc
    raise AssertionError(f"{statement!r} did not fail")


async def test_an_away_server_is_told_apart_from_a_bad_statement(
    cluster: PostgresCluster,
) -> None:
    db = Database(await create_database(cluster, "away"), pool_size=2)
    try:
        bad_statement = await _error_of(db, "SELECT * FROM no_such_table")
        assert not database_unreachable(bad_statement)
        async with db.read() as conn:  # a pooled connection, which the stop will cut
            await conn.execute(text("SELECT 1"))
        await asyncio.to_thread(cluster.stop, "immediate")
        # The pooled connection died with the server; a new one is refused.
        assert database_unreachable(await _error_of(db, "SELECT 1"))
        assert database_unreachable(await _error_of(db, "SELECT 1"))
        await asyncio.to_thread(cluster.start)
        async with db.read() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await db.dispose()


async def test_requests_get_503_while_the_database_is_away_and_streams_stay_open(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    database_url = await create_database(cluster, "conveyor")
    await asyncio.to_thread(upgrade, database_url)
    # Each item waits at its "provider" until the test lets it finish.
    adapter = PollingModel()
    settings = fast_settings(database_url, tmp_path / "data")
    app = create_app(settings, extra_adapters=(adapter,))
    async with (
        serving(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        created = await client.post("/v1/jobs", json={"model": "test/poll", "items": [{"n": 1}]})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        events: list[str] = []
        connections = 0

        async def follow() -> dict[str, Any]:
            nonlocal connections
            connections += 1
            async with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
                assert stream.status_code == 200
                name = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                        events.append(name)
                    elif line.startswith("data:") and name == "finished":
                        return dict(json.loads(line[5:]))
            raise AssertionError(f"the stream ended without 'finished': {events}")

        follower = asyncio.create_task(follow())
        while not events:
            await asyncio.sleep(0.05)

        await asyncio.to_thread(cluster.stop, "immediate")
        away = await client.get(f"/v1/jobs/{job_id}")
        assert away.status_code == 503, away.text
        assert away.json()["error"] == "DATABASE_UNAVAILABLE"
        assert away.headers["Retry-After"] == "2"
        await asyncio.sleep(2.5)  # the stream re-reads the job (and fails) meanwhile
        assert not follower.done()
        await asyncio.to_thread(cluster.start)

        async def answers() -> bool:
            return (await client.get(f"/v1/jobs/{job_id}")).status_code == 200

        async with asyncio.timeout(30):
            while not await answers():
                await asyncio.sleep(0.2)
        adapter.finish_all = True
        finished = await asyncio.wait_for(follower, 60)
    assert finished["status"] == "completed", finished
    assert connections == 1
