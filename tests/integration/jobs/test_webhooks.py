"""Webhooks: signed POST when a job finishes, retried until the receiver accepts."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from sqlalchemy import func, select

from conveyor.core.db import Database
from conveyor.execution.models import webhook_attempts
from conveyor.execution.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify_webhook
from conveyor.jobs.tasks import DELIVER_WEBHOOK as WEBHOOK_HANDLER
from conveyor.queue.models import queue_tasks
from tests.integration.conftest import Serve
from tests.support.adapters import PollingModel, ScriptedModel


async def _when_delivery_is_over(db: Database, job_id: str) -> list[tuple[int, int | None]]:
    """The job's webhook attempts ``(attempt, status)`` once delivering has stopped: no
    webhook task is queued or running, and the attempts table read the same twice in a row.
    Only then can a test say how many deliveries there were (not just "at least")."""
    previous: list[tuple[int, int | None]] | None = None
    async with asyncio.timeout(20):
        while True:
            async with db.read() as conn:
                pending = await conn.scalar(
                    select(func.count())
                    .select_from(queue_tasks)
                    .where(
                        queue_tasks.c.handler == WEBHOOK_HANDLER,
                        queue_tasks.c.status.in_(("queued", "running")),
                    )
                )
                rows = await conn.execute(
                    select(webhook_attempts.c.attempt, webhook_attempts.c.status_code)
                    .where(webhook_attempts.c.job_id == job_id)
                    .order_by(webhook_attempts.c.id)
                )
                attempts = [(row.attempt, row.status_code) for row in rows]
            if pending == 0 and attempts == previous:
                return attempts
            previous = attempts
            await asyncio.sleep(0.05)


async def test_finished_job_is_posted_signed_and_retried(serve: Serve) -> None:
    received: list[tuple[bytes, str]] = []
    deliveries: list[str] = []
    answers = [500, 200]

    async def receive(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers[SIGNATURE_HEADER]))
        deliveries.append(request.headers[DELIVERY_HEADER])
        return web.Response(status=answers.pop(0) if answers else 200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with serve(ScriptedModel()) as client:
            job = (
                await client.post(
                    "/v1/jobs",
                    json={
                        "model": "test/echo",
                        "items": [{"text": "w"}],
                        "webhook_url": f"http://127.0.0.1:{port}/hook",
                    },
                )
            ).json()
            async with asyncio.timeout(20):
                while len(received) < 2:
                    await asyncio.sleep(0.05)
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            attempts = await _when_delivery_is_over(runtime.db, job["id"])
    finally:
        await runner.cleanup()
    body, signature = received[-1]
    assert verify_webhook("test-secret", signature, body, now=time.time())
    assert not verify_webhook("other-secret", signature, body, now=time.time())
    assert not verify_webhook("test-secret", signature, body + b" ", now=time.time())
    payload = json.loads(body)
    assert payload["event"] == "job.finished"
    assert payload["job"]["id"] == job["id"]
    assert payload["job"]["status"] == "completed"
    assert len(received) == 2  # the 500 was retried once, then accepted
    assert attempts == [(1, 500), (2, 200)]
    # The retry is the same announcement: the receiver can tell it took it already.
    assert len(set(deliveries)) == 1
    assert deliveries[0]


async def _receiver(received: list[bytes]) -> tuple[web.AppRunner, int]:
    async def receive(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_cancelled_job_is_posted_once_with_its_final_status(serve: Serve) -> None:
    """Cancel a job while one item runs at the provider and others wait: the job ends by
    the cancel, and its webhook goes out exactly once, saying ``cancelled`` — the running
    item noticing the cancel afterwards must not send another."""
    received: list[bytes] = []
    runner, port = await _receiver(received)
    model = PollingModel()
    try:
        async with serve(model, worker_concurrency=1) as client:
            job = (
                await client.post(
                    "/v1/jobs",
                    json={
                        "model": "test/poll",
                        "items": [{"n": 1}, {"n": 2}],
                        "webhook_url": f"http://127.0.0.1:{port}/hook",
                    },
                )
            ).json()
            async with asyncio.timeout(10):
                while not model.submitted:
                    await asyncio.sleep(0.02)
            cancelled = (await client.post(f"/v1/jobs/{job['id']}/cancel")).json()
            assert cancelled["status"] == "cancelled"
            async with asyncio.timeout(10):
                while not model.cancelled:
                    await asyncio.sleep(0.02)
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            attempts = await _when_delivery_is_over(runtime.db, job["id"])
    finally:
        await runner.cleanup()
    assert attempts == [(1, 200)]
    assert len(received) == 1
    payload = json.loads(received[0])
    assert payload["event"] == "job.finished"
    assert payload["job"]["id"] == job["id"]
    assert payload["job"]["status"] == "cancelled"
    assert payload["job"]["progress"]["cancelled"] == 2
