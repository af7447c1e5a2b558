"""Many nodes, for real: the README's several-machines set-up on one machine, then faults.

PostgreSQL (a private cluster this test starts on its own port and data directory, never the
shared server), an S3-compatible server (moto), the provider simulator, two
``conveyor serve --no-workers`` API nodes and two ``conveyor worker`` processes, each with a
data directory of its own: they share nothing but the database and the bucket. Set up as the
README says (``migrate``, a key, then the nodes), with one provider added as data whose model
sends an idempotency key, as a provider that de-duplicates submissions takes one.

A job is submitted on node A and followed over Server-Sent Events on node B. While its items
are at the provider, one worker and node A are killed with SIGKILL and PostgreSQL is
restarted (immediate stop: its clients see a crash). Checked: every item succeeds and its
result is in the bucket, none is lost; no item was paid for twice (one idempotency key per
item at the provider: a resend after a crash reuses its key, which such a provider
de-duplicates); the stream on B saw every item and the job's end; the surviving worker and
node B lived through the database restart. The recovery time (from the kills to the last item
finishing) is reported, not asserted: wall time on a shared machine is information.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiobotocore.session import get_session
from sqlalchemy import select

from conveyor.core.db import standalone_engine
from conveyor.providers.http.loader import SHIPPED_SPECS
from conveyor.queue.models import TASK_RUNNING, queue_tasks, queue_workers
from conveyor.sim import SimConfig, SimulatorThread
from tests.support import s3server
from tests.support.postgres_cluster import PostgresCluster, create_database
from tests.support.processes import ServeProcess, WorkerProcess, run_cli
from tests.support.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ITEMS = 40
# Each worker holds this many items at once: the job takes several rounds of provider
# latency, so the faults land while items are in flight and others are still queued.
WORKER_CONCURRENCY = 8
HEARTBEAT_TIMEOUT = 4.0
PROVIDER = "steady"
MODEL = f"{PROVIDER}/z-image"
BUCKET = "conveyor-nodes"
SECRET_KEY = secrets.token_hex(32)


@pytest.fixture
def bucket_endpoint() -> Iterator[str]:
    with s3server.running_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    # Two to four seconds per generation: kills land while tasks are at the provider.
    with SimulatorThread(SimConfig(latency_min=2, latency_max=4, seed=13)) as sim:
        yield sim


def _idempotent_provider_spec() -> str:
    """gen-api's z-image as an operator would add it for a provider that de-duplicates
    submissions: same protocol (served by the simulator), plus an idempotency key."""
    shipped = yaml.safe_load((Path(SHIPPED_SPECS) / "genapi.yaml").read_text())
    (z_image,) = [m for m in shipped["models"] if m["id"] == "genapi/z-image"]
    spec = {
        **{k: v for k, v in shipped.items() if k not in ("models", "base_url_env", "auth")},
        "name": PROVIDER,
        "title": "gen-api z-image, de-duplicating",
        "auth": {"type": "bearer", "key_env": ["CONVEYOR_STEADY_API_KEY"]},
        "models": [
            {**z_image, "id": MODEL, "idempotency": {"header": "Idempotency-Key"}},
        ],
    }
    return yaml.safe_dump(spec, sort_keys=False)


def _node_env(
    database_url: str, bucket_endpoint: str, sim_url: str, data_dir: Path
) -> dict[str, str]:
    """The README's several-machines variables, then the test's tuning (short heartbeats so
    a dead worker's items are taken over in seconds, the simulator as the provider)."""
    return {
        "CONVEYOR_DATABASE_URL": database_url,
        "CONVEYOR_STORAGE": "s3",
        "CONVEYOR_S3_BUCKET": BUCKET,
        "CONVEYOR_S3_ENDPOINT_URL": bucket_endpoint,
        "CONVEYOR_S3_ACCESS_KEY_ID": s3server.ACCESS_KEY_ID,
        "CONVEYOR_S3_SECRET_ACCESS_KEY": s3server.SECRET_ACCESS_KEY,
        "CONVEYOR_ENV": "prod",
        "CONVEYOR_SECRET_KEY": SECRET_KEY,
        # Each node its own directory: nothing shared but the database and the bucket.
        "CONVEYOR_DATA_DIR": str(data_dir),
        "CONVEYOR_ENV_FILE": str(data_dir / "none.env"),
        "CONVEYOR_SIMULATE": "true",
        "CONVEYOR_SIMULATOR_URL": sim_url,
        "CONVEYOR_WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "CONVEYOR_HEARTBEAT_INTERVAL": "0.5",
        "CONVEYOR_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "CONVEYOR_SWEEP_INTERVAL": "1",
        "CONVEYOR_QUEUE_POLL_INTERVAL": "0.2",
        "CONVEYOR_PROCESS_POOL_SIZE": "1",
        "CONVEYOR_DATABASE_POOL_SIZE": "5",
        "CONVEYOR_LOG_LEVEL": "INFO",
    }


@dataclass
class StreamLog:
    """What one client following the job's events over SSE saw."""

    items: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    finished: dict[str, Any] | None = None
    finished_at: float | None = None
    reconnects: int = 0
    breaks: list[str] = field(default_factory=list)


async def _follow(client: httpx.AsyncClient, job_id: str, seen: StreamLog) -> None:
    """Follow ``/v1/jobs/{id}/events`` until ``finished``, as a browser's EventSource does:
    on a broken stream, connect again with ``Last-Event-ID``."""
    last_id: str | None = None
    while seen.finished is None:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with client.stream(
                "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=30
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise httpx.HTTPStatusError(
                        f"{response.status_code}: {response.text[:200]}",
                        request=response.request,
                        response=response,
                    )
                name, data = "message", ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif line.startswith("id:"):
                        last_id = line[3:].strip()
                    elif line == "" and data:
                        _record(seen, name, json.loads(data))
                        name, data = "message", ""
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            seen.breaks.append(f"{type(exc).__name__}: {exc}")
        if seen.finished is None:
            seen.reconnects += 1
            await asyncio.sleep(0.5)


def _record(seen: StreamLog, name: str, data: dict[str, Any]) -> None:
    seen.events[name] += 1
    if name.startswith("item."):
        seen.items[str(data["item_id"])] += 1
    elif name == "finished":
        seen.finished = data
        seen.finished_at = time.monotonic()


async def _until(predicate: Any, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def _items_held_by(database_url: str, worker_name: str) -> set[str]:
    """The items whose queue tasks the worker called ``worker_name`` holds now."""
    engine = standalone_engine(database_url)
    try:
        async with engine.connect() as conn:
            payloads = await conn.scalars(
                select(queue_tasks.c.payload)
                .select_from(
                    queue_tasks.join(queue_workers, queue_tasks.c.worker_id == queue_workers.c.id)
                )
                .where(queue_tasks.c.status == TASK_RUNNING, queue_workers.c.name == worker_name)
            )
            return {str(payload["item_id"]) for payload in payloads}
    finally:
        await engine.dispose()


async def _all_items(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(f"/v1/jobs/{job_id}/items", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


async def _bucket_keys(endpoint: str) -> list[str]:
    async with get_session().create_client(
        "s3",
        region_name=s3server.REGION,
        endpoint_url=endpoint,
        aws_access_key_id=s3server.ACCESS_KEY_ID,
        aws_secret_access_key=s3server.SECRET_ACCESS_KEY,
    ) as s3:
        keys: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=BUCKET):
            keys.extend(str(o["Key"]) for o in page.get("Contents", []))
        return keys


@dataclass
class Nodes:
    api_a: ServeProcess
    api_b: ServeProcess
    doomed_worker: WorkerProcess
    surviving_worker: WorkerProcess

    def all(self) -> list[ServeProcess | WorkerProcess]:
        return [self.api_a, self.api_b, self.doomed_worker, self.surviving_worker]


async def test_nodes_die_and_the_database_restarts_yet_every_item_finishes_once(
    cluster: PostgresCluster,
    bucket_endpoint: str,
    simulator: SimulatorThread,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    await s3server.create_bucket(bucket_endpoint, BUCKET)
    database_url = await create_database(cluster, "conveyor")

    def env(node: str) -> dict[str, str]:
        data_dir = tmp_path / node
        data_dir.mkdir(exist_ok=True)
        return _node_env(database_url, bucket_endpoint, simulator.base_url, data_dir)

    # Once per release, as the README says; then a key (API nodes on a real address need
    # one) and the provider, both stored in the database every node reads.
    operator = env("operator")
    await run_cli(operator, "migrate")
    spec_file = tmp_path / "steady.yaml"
    spec_file.write_text(_idempotent_provider_spec())
    key_output, _ = await asyncio.gather(
        run_cli(operator, "keys", "create", "nodes-test"),
        run_cli(operator, "providers", "add", str(spec_file)),
    )
    api_key = key_output.strip().splitlines()[-1]
    assert api_key.startswith("cvk_"), api_key

    nodes = Nodes(
        api_a=ServeProcess(env("a"), tmp_path / "a.log", free_port(), "--no-workers"),
        api_b=ServeProcess(env("b"), tmp_path / "b.log", free_port(), "--no-workers"),
        doomed_worker=WorkerProcess(env("w1"), tmp_path / "w1.log"),
        surviving_worker=WorkerProcess(env("w2"), tmp_path / "w2.log"),
    )
    auth = {"Authorization": f"Bearer {api_key}"}
    seen = StreamLog()
    try:
        await asyncio.gather(*(node.start(timeout=90) for node in nodes.all()))
        async with (
            httpx.AsyncClient(base_url=nodes.api_a.base_url, headers=auth, timeout=30) as on_a,
            httpx.AsyncClient(base_url=nodes.api_b.base_url, headers=auth, timeout=30) as on_b,
        ):
            submitted = await on_a.post(
                "/v1/jobs",
                json={"model": MODEL, "items": [{"prompt": f"item {i}"} for i in range(ITEMS)]},
            )
            assert submitted.status_code == 201, submitted.text
            job_id = str(submitted.json()["id"])
            follower = asyncio.create_task(_follow(on_b, job_id, seen))

            # Mid-run: a few items done, the doomed worker holding a full set of items
            # whose tasks are at the provider, more items still queued.
            doomed_name = f"{socket.gethostname()}:{nodes.doomed_worker.pid}"

            held: set[str] = set()

            async def mid_run() -> bool:
                nonlocal held
                held = await _items_held_by(database_url, doomed_name)
                at_provider = simulator.counters()["submissions_total"] - len(seen.items)
                return (
                    len(seen.items) >= 4
                    and len(held - set(seen.items)) >= WORKER_CONCURRENCY - 1
                    and at_provider >= 2 * WORKER_CONCURRENCY - 2
                )

            await _until(mid_run, 60, "items to be in flight on both workers")
            done_before_kills = len(seen.items)
            # What the doomed worker had in hand: another worker must take each of these over.
            orphaned = held - set(seen.items)
            nodes.doomed_worker.kill()
            nodes.api_a.kill()
            killed_wall, killed_at = datetime.now(UTC), time.monotonic()
            await nodes.doomed_worker.wait()
            await nodes.api_a.wait()

            # The database goes away as a crash would take it (no goodbye to its clients),
            # stays down a moment, and comes back on the same port with the same data.
            down_for = await asyncio.to_thread(cluster.restart, "immediate", 1.5)

            await asyncio.wait_for(follower, 100)
            items = await _all_items(on_b, job_id)
            job = (await on_b.get(f"/v1/jobs/{job_id}")).json()
            content = await on_b.get(
                f"/v1/assets/{items[0]['output']['files'][0]['asset_id']}/content"
            )
        survivors_alive = nodes.surviving_worker.alive and nodes.api_b.alive
    finally:
        for node in nodes.all():
            await node.close()
    counters = simulator.counters()

    # None lost: every item succeeded, and its result is in the bucket.
    assert job["status"] == "completed", job
    assert job["progress"]["completed"] == ITEMS, job
    assert job["progress"]["failed"] == 0, job
    assert len(items) == ITEMS
    assert Counter(item["status"] for item in items) == {"completed": ITEMS}
    assert content.status_code == 200
    assert content.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(await _bucket_keys(bucket_endpoint)) >= ITEMS

    # None paid for twice: one idempotency key per item at the provider. A submission resent
    # after a crash carries the same key (the provider de-duplicates it); a second key would
    # be a second paid generation.
    keys = counters["idempotency_keys"]
    keys_per_item = Counter(key.split(":", 1)[0] for key in keys)
    assert set(keys_per_item) == {item["id"] for item in items}
    assert set(keys_per_item.values()) == {1}, keys_per_item
    resent = counters["submissions_total"] - len(keys)

    # Followed on B from start to end, through node A's death and the database's restart.
    assert seen.finished is not None, seen
    assert seen.finished["status"] == "completed", seen
    assert set(seen.items) == {item["id"] for item in items}, seen
    assert survivors_alive, "the surviving worker or node B died"
    # One stream from start to end: the database's restart did not break it.
    assert seen.reconnects == 0, seen.breaks

    finished = {item["id"]: datetime.fromisoformat(item["finished_at"]) for item in items}
    recovery = (max(finished.values()) - killed_wall).total_seconds()
    taken_over = max(finished[item_id] for item_id in orphaned)
    stream_end = (seen.finished_at or killed_at) - killed_at
    report = {
        "items": ITEMS,
        "done_before_kills": done_before_kills,
        "killed_worker_held": len(orphaned),
        "recovery_seconds": round(recovery, 2),
        "killed_workers_items_done_after_seconds": round(
            (taken_over - killed_wall).total_seconds(), 2
        ),
        "stream_finished_after_kills_seconds": round(stream_end, 2),
        "database_down_seconds": round(down_for, 2),
        "resent_submissions_deduplicated": resent,
        "sse_reconnects": seen.reconnects,
    }
    for name, value in report.items():
        request.node.user_properties.append((name, value))
    print(f"\nmany nodes: {json.dumps(report)}; stream breaks: {seen.breaks}")
