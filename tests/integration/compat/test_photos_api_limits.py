"""Seed 004's limits and who sees what, on both databases.

* 10 requests at once per client address: ten uploads are held mid-body by a gate in the
  test (so they hold their slots for as long as the test says, not for as long as timing
  allows) and the eleventh is refused 429 / 4029; ``X-Forwarded-For`` from a peer that is
  not a trusted proxy changes nothing, from a trusted one it names the client.
* 120 s of work per photo (on a manual clock): a photo stuck at fal fails with a timeout.
* History 30 days (on a manual clock, the global retention set to a year): after 31 days
  the history is empty and the photo's files are gone.
* Keys: another client's photos are 404; no key when keys exist is 401 in the seed's body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from conveyor.assets.models import assets
from conveyor.core.clock import ManualClock
from tests.integration.compat.photos_stack import PhotoStack, mug_photo, open_photo_stack

LIMIT = 10
DAY = timedelta(days=1).total_seconds()


def gated_upload(stack: PhotoStack, gate: asyncio.Event) -> tuple[bytes, str, Any]:
    """A valid one-photo form whose body stops halfway until ``gate`` is set."""
    request = stack.http.build_request(
        "POST",
        "/process_single",
        files={"file": ("mug.png", mug_photo((64, 48), "PNG"), "image/png")},
        data={"modelId": "grabcut"},
    )
    body = request.read()

    async def halves() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        await gate.wait()
        yield body[len(body) // 2 :]

    return body, request.headers["Content-Type"], halves


async def hold_slots(
    stack: PhotoStack, gate: asyncio.Event, address: str, forwarded_for: str | None = None
) -> list[asyncio.Task[httpx.Response]]:
    """Ten uploads in flight, each holding a slot of ``address`` until ``gate`` opens."""
    _, content_type, halves = gated_upload(stack, gate)
    headers = {"Content-Type": content_type}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    held = [
        asyncio.create_task(stack.http.post("/process_single", content=halves(), headers=headers))
        for _ in range(LIMIT)
    ]
    limit = stack.runtime.photos.limit
    async with asyncio.timeout(30):
        while limit.in_flight(address) < LIMIT:
            await asyncio.sleep(0.01)
    return held


async def test_the_eleventh_request_at_once_from_one_address_is_429(
    database_url: str, tmp_path: Path
) -> None:
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        gate = asyncio.Event()
        held = await hold_slots(stack, gate, "127.0.0.1")
        eleventh = await stack.http.post(
            "/process_single", files={"file": ("mug.png", mug_photo((64, 48), "PNG"))}
        )
        assert eleventh.status_code == 429
        body = eleventh.json()
        assert (body["error"], body["code"]) == ("TOO_MANY_REQUESTS", 4029)
        # A client cannot step around the limit with its own X-Forwarded-For.
        spoofed = await stack.http.get("/models", headers={"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.status_code == 429
        assert (await stack.http.get("/health")).status_code == 429

        gate.set()
        answers = await asyncio.gather(*held)
        assert [a.status_code for a in answers] == [200] * LIMIT
        assert len({a.json()["processing_id"] for a in answers}) == LIMIT
        assert stack.runtime.photos.limit.in_flight("127.0.0.1") == 0
        assert (await stack.http.get("/models")).status_code == 200


async def test_forwarded_for_names_the_client_behind_a_trusted_proxy(
    database_url: str, tmp_path: Path
) -> None:
    async with open_photo_stack(
        database_url, tmp_path / "data", photos_trusted_proxies=["127.0.0.0/8"]
    ) as stack:
        gate = asyncio.Event()
        held = await hold_slots(stack, gate, "198.51.100.7", forwarded_for="198.51.100.7")
        busy = await stack.http.get("/models", headers={"X-Forwarded-For": "198.51.100.7"})
        assert busy.status_code == 429
        other = await stack.http.get("/models", headers={"X-Forwarded-For": "198.51.100.8"})
        assert other.status_code == 200
        # The proxy's own address has its own slots.
        assert (await stack.http.get("/models")).status_code == 200
        gate.set()
        assert [a.status_code for a in await asyncio.gather(*held)] == [200] * LIMIT


async def test_a_photo_working_past_120_seconds_fails_with_a_timeout(
    database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    stuck = {"models": {"fal/fal-ai/flux-kontext-lora": {"latency_min": 3600, "latency_max": 3600}}}
    async with open_photo_stack(
        database_url, tmp_path / "data", simulate=True, sim=stuck, clock=clock
    ) as stack:
        started = await stack.http.post("/process_single", files={"file": ("mug.jpg", mug_photo())})
        pid = started.json()["processing_id"]
        async with asyncio.timeout(60):
            while True:
                progress = (await stack.http.get(f"/single_progress/{pid}")).json()
                if progress["current_step"] == "background":
                    break
                await asyncio.sleep(0.02)
        # The cut-out is not there yet, and says so.
        early = await stack.http.get(f"/single_image/{pid}/background")
        assert (early.status_code, early.json()["code"]) == (404, 4004)
        clock.advance(121)
        done = await stack.wait_for(pid)
        assert done["status"] == "error"
        assert done["current_step"] == "error"
        assert done["error"].startswith("timeout: processing took longer than 120 s")
        assert done["error_code"] == 5002
        assert done["gpt_completed"] is True
        assert done["final_completed"] is False
        final = await stack.http.get(f"/single_image/{pid}/final")
        assert final.status_code == 502
        assert final.json()["code"] == 5002
        assert (await stack.http.get(f"/single_image/{pid}/original")).status_code == 200


async def test_history_is_kept_30_days_then_purged_with_its_files(
    database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    async with open_photo_stack(
        database_url, tmp_path / "data", clock=clock, retention_days=365
    ) as stack:
        started = await stack.http.post("/process_single", files={"file": ("mug.jpg", mug_photo())})
        pid = started.json()["processing_id"]
        assert (await stack.wait_for(pid))["status"] == "completed"
        async with stack.runtime.db.read() as conn:
            rows = await conn.scalars(select(assets.c.storage_key).where(assets.c.job_id == pid))
            keys = set(rows)
        assert len(keys) == 3  # the upload, the cut-out, the final
        storage = stack.runtime.storage
        assert all([await storage.exists(key) for key in keys])

        clock.advance(29 * DAY)
        assert len((await stack.http.get("/history")).json()["history"]) == 1
        clock.advance(2 * DAY)
        # Older than the seed's 30 days: not shown, even before the purge has run.
        assert (await stack.http.get("/history")).json() == {"history": []}

        purge = asyncio.create_task(stack.runtime.retention.purge())
        async with asyncio.timeout(30):
            while not purge.done():  # the purge waits a grace period before deleting bytes
                clock.advance(120)
                await asyncio.sleep(0.01)
        assert purge.result() == 1
        assert (await stack.http.get(f"/single_progress/{pid}")).status_code == 404
        assert not any([await storage.exists(key) for key in keys])


async def test_another_client_sees_none_of_your_photos(database_url: str, tmp_path: Path) -> None:
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        clients = stack.runtime.clients
        alice, _ = await clients.create_key("alice")
        bob, _ = await clients.create_key("bob")
        as_alice = {"Authorization": f"Bearer {alice}"}
        as_bob = {"Authorization": f"Bearer {bob}"}
        anonymous = await stack.http.post(
            "/process_single", files={"file": ("mug.jpg", mug_photo())}
        )
        assert anonymous.status_code == 401
        assert (anonymous.json()["error"], anonymous.json()["code"]) == ("UNAUTHORIZED", 4010)
        assert (await stack.http.get("/health")).status_code == 200  # no key needed

        single = await stack.http.post(
            "/process_single", files={"file": ("mug.jpg", mug_photo())}, headers=as_alice
        )
        pid = single.json()["processing_id"]
        batch = await stack.http.post(
            "/process_batch", files=[("files[]", ("m.jpg", mug_photo()))], headers=as_alice
        )
        batch_id = batch.json()["batch_id"]
        own = await stack.http.get(f"/single_progress/{pid}", headers=as_alice)
        assert own.status_code == 200
        for path in (
            f"/single_progress/{pid}",
            f"/single_image/{pid}/original",
            f"/batch_progress/{batch_id}",
            f"/batch_image/{batch_id}/m_original.png",
            f"/download_batch/{batch_id}",
            f"/history?batch_id={batch_id}",
        ):
            answer = await stack.http.get(path, headers=as_bob)
            assert (answer.status_code, answer.json()["code"]) == (404, 4004), path
        assert (await stack.http.get("/history", headers=as_bob)).json() == {"history": []}
        mine = (await stack.http.get("/history", headers=as_alice)).json()["history"]
        assert {entry["id"] for entry in mine} >= {pid}
        assert len(mine) == 2
        await _finish(stack, pid, batch_id, as_alice)


async def _finish(stack: PhotoStack, pid: str, batch_id: str, headers: dict[str, str]) -> None:
    """Let the two photos end before the stack stops (their workers are in this process)."""
    async with asyncio.timeout(120):
        for path in (f"/single_progress/{pid}", f"/batch_progress/{batch_id}"):
            while (await stack.http.get(path, headers=headers)).json()["status"] == "processing":
                await asyncio.sleep(0.05)
