"""Cancelling a job stops its items' input fetches at once: the worker's slot and the
connection are freed, not held until the fetch deadline."""

from __future__ import annotations

import asyncio

from tests.integration.conftest import Serve
from tests.support.adapters import ScriptedModel
from tests.unit.net.local_server import local_server


async def test_a_cancel_closes_the_fetches_of_running_items(serve: Serve) -> None:
    async with local_server() as photos, serve(ScriptedModel(), fetch_deadline=600) as client:
        worker = client.app.state.runtime.worker  # type: ignore[attr-defined]
        body = {
            "recipe": "vehicle-damage",
            "options": {"describe_models": ["test/echo"]},
            "items": [
                {"lot_id": f"lot-{n}", "images": [{"url": photos.url(f"/hang?n={n}")}]}
                for n in range(3)
            ],
        }
        job = (await client.post("/v1/jobs", json=body)).json()
        async with asyncio.timeout(30):
            while len([r for r in photos.requests if "/hang" in r]) < 3:
                await asyncio.sleep(0.02)
        assert worker.in_flight == 3
        answer = await client.post(f"/v1/jobs/{job['id']}/cancel")
        assert answer.json()["status"] == "cancelled"
        # The fetches hang until the server is told otherwise (never, here): only the
        # cancel can free the slots.
        async with asyncio.timeout(10):
            while worker.in_flight:
                await asyncio.sleep(0.02)
        items = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
        photos.release.set()
    assert {i["status"] for i in items} == {"cancelled"}
