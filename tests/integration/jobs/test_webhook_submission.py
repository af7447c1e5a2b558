"""``webhook_url`` is checked when a job is submitted, with the policy its delivery uses:
a URL the delivery would refuse is a 422 naming the field, and nothing is created."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from sqlalchemy import func, select

from conveyor.jobs.models import jobs as jobs_table
from conveyor.queue.models import queue_tasks
from tests.integration.conftest import Serve
from tests.support.adapters import ScriptedModel

# As a production server runs: private addresses refused, one internal network allowed.
POLICY = {"allow_private_urls": False, "allowed_fetch_networks": ["127.0.0.2/32"]}


@pytest.mark.parametrize(
    ("webhook_url", "reason"),
    [
        ("http://127.0.0.1:{api_port}/v1/jobs", "loopback address 127.0.0.1"),
        ("http://localhost:5432/", "localhost is a loopback name"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
        ("https://10.0.0.5/hook", "private address 10.0.0.5"),
        ("http://[::1]:8000/hook", "loopback address ::1"),
    ],
)
async def test_a_webhook_url_delivery_would_refuse_is_refused_at_submission(
    serve: Serve, webhook_url: str, reason: str
) -> None:
    model = ScriptedModel()
    async with serve(model, **POLICY) as client:
        url = webhook_url.format(api_port=client.base_url.port)
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "test/echo",
                "items": [{"text": "a"}],
                "webhook_url": url,
                "idempotency_key": "hook-1",
            },
        )
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["error"] == "VALIDATION_ERROR"
        assert body["message"].startswith("webhook_url: URL refused: ")
        assert reason in body["message"]
        assert body["details"]["errors"][0]["loc"] == "body.webhook_url"

        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        async with runtime.db.read() as conn:
            assert await conn.scalar(select(func.count()).select_from(jobs_table)) == 0
            assert await conn.scalar(select(func.count()).select_from(queue_tasks)) == 0
        # The idempotency key was not used up by the refused request.
        again = await client.post(
            "/v1/jobs",
            json={"model": "test/echo", "items": [{"text": "a"}], "idempotency_key": "hook-1"},
        )
        assert again.status_code == 201, again.text
    assert model.calls == {"a": 1}


async def test_an_allowed_webhook_url_is_accepted_and_delivered(serve: Serve) -> None:
    delivered = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        delivered.set()
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    runner = web.AppRunner(receiver)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with serve(ScriptedModel(), **POLICY) as client:
            answer = await client.post(
                "/v1/jobs",
                json={
                    "model": "test/echo",
                    "items": [{"text": "w"}],
                    "webhook_url": f"http://127.0.0.2:{port}/hook",
                },
            )
            assert answer.status_code == 201, answer.text
            assert answer.json()["webhook_url"] == f"http://127.0.0.2:{port}/hook"
            await asyncio.wait_for(delivered.wait(), 20)
    finally:
        await runner.cleanup()
