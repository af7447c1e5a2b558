"""Webhooks: signed POST when a job finishes, retried until the receiver accepts."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from conveyor.execution.webhooks import SIGNATURE_HEADER, verify_webhook
from tests.integration.conftest import Serve
from tests.support.adapters import ScriptedModel


async def test_finished_job_is_posted_signed_and_retried(serve: Serve) -> None:
    received: list[tuple[bytes, str]] = []
    answers = [500, 200]

    async def receive(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers[SIGNATURE_HEADER]))
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
