"""What happens to boxes over time: a generation that survives a restart of the server,
deleting a box (its generations cancelled, its files gone, other boxes' assets intact), and
results that outlive the retention of their jobs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.clock import ManualClock
from conveyor.jobs.retention import RetentionSweeper
from conveyor.storage import content_key
from tests.integration.compat.boxes_support import asset, download, png, settled, upload
from tests.integration.compat.test_boxes_api import SEEDANCE, finish_kie_task, generate, new_box
from tests.integration.providers.callback_stack import (
    SECRETS,
    eventually,
    open_stack,
    start_sim,
    until,
)
from tests.support.server import free_port

DAY = 86_400.0


@pytest.fixture(autouse=True)
def callback_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


async def test_deleting_a_box_cancels_its_generations_and_frees_its_files(
    database_url: str, tmp_path: Path
) -> None:
    async with open_stack(database_url, tmp_path / "data") as stack:
        doomed = await new_box(stack, "doomed")
        kept = await new_box(stack, "kept")
        photo = png((10, 200, 90))
        first = (await upload(stack, doomed, photo, "frame.png")).json()
        clip = await generate(
            stack,
            kept,
            {"model": "kie/seedance-1.5-pro", "prompt": "waves", "parent_asset": first["id"]},
        )
        assert (await finish_kie_task(stack, clip["id"]))["status"] == "COMPLETED"
        running = await generate(stack, doomed, {"model": "kie/seedream-4.5", "prompt": "x"})
        await until(lambda: stack.clock.sleepers == 1)
        assert (await asset(stack, running["id"]))["status"] == "PROCESSING"

        answer = await stack.http.delete(f"/api/boxes/{doomed}/")
        assert answer.status_code == 204, answer.text
        assert answer.content == b""

        assert (await stack.http.get(f"/api/boxes/{doomed}/")).status_code == 404
        for gone in (first["id"], running["id"]):
            assert (await stack.http.get(f"/api/assets/{gone}/")).status_code == 404
        job = (await stack.http.get(f"/v1/jobs/{running['job_id']}")).json()
        assert job["status"] == "cancelled"
        # The upload's link no longer leads anywhere.
        assert (await download(first["file_url"])).status_code == 404
        # The other box's video keeps its file; its parent is gone.
        video = await asset(stack, clip["id"])
        assert video["status"] == "COMPLETED"
        assert video["parent_asset"] is None
        assert (await download(video["file_url"])).status_code == 200
        assert [b["name"] for b in (await stack.http.get("/api/boxes/")).json()] == ["kept"]

        # A minute later the upload's bytes, used by nothing else, are deleted.
        storage = stack.runtime.storage
        key = content_key(hashlib.sha256(photo).hexdigest(), ".png")
        assert await storage.exists(key)
        stack.clock.advance(60)

        async def freed() -> bool | None:
            return True if not await storage.exists(key) else None

        assert await eventually(freed)


async def test_results_outlive_the_retention_of_their_jobs(
    database_url: str, tmp_path: Path
) -> None:
    sim = {"models": {f"kie/{SEEDANCE}": {"kie_moderation_rate": 1}}}
    async with open_stack(database_url, tmp_path / "data", sim=sim) as stack:
        box_id = await new_box(stack)
        image = await generate(stack, box_id, {"model": "kie/seedream-4.5", "prompt": "a kite"})
        done = await finish_kie_task(stack, image["id"])
        assert done["status"] == "COMPLETED"
        picture = (await download(done["file_url"])).content
        refused = await generate(
            stack,
            box_id,
            {"model": "kie/seedance-1.5-pro", "prompt": "x", "parent_asset": image["id"]},
        )
        await until(lambda: stack.clock.sleepers == 1)
        stack.clock.advance(8)
        failed = await settled(stack, refused["id"])
        assert failed["status"] == "FAILED"

        settler = stack.runtime.box_settler
        assert await settler.settle_finished() == 2
        assert await settler.settle_finished() == 0  # nothing new to keep

        runtime = stack.runtime
        stack.clock.advance(2 * DAY)
        sweeper = RetentionSweeper(
            runtime.db, runtime.queue, runtime.assets, stack.clock, days=1, grace=0
        )
        assert await sweeper.purge() == 2
        for job_id in (image["job_id"], refused["job_id"]):
            assert (await stack.http.get(f"/v1/jobs/{job_id}")).status_code == 404

        kept: dict[str, Any] = await asset(stack, image["id"])
        assert kept["status"] == "COMPLETED"
        assert kept["job_id"] is None
        assert kept["external_task_id"] == done["external_task_id"]
        assert (kept["mime_type"], kept["size"]) == (done["mime_type"], done["size"])
        again = await download(kept["file_url"])
        assert again.status_code == 200
        assert again.content == picture
        lost: dict[str, Any] = await asset(stack, refused["id"])
        assert lost["status"] == "FAILED"
        assert "failCode 400" in lost["error_message"]
        assert lost["external_task_id"] == failed["external_task_id"]


async def test_a_generation_survives_a_restart_and_its_callback_still_arrives(
    database_url: str, tmp_path: Path
) -> None:
    simulator = await start_sim(ManualClock())
    running = (simulator, free_port())
    try:
        async with open_stack(database_url, tmp_path / "data", running=running) as stack:
            box_id = await new_box(stack)
            made = await generate(stack, box_id, {"model": "kie/seedream-4.5", "prompt": "a mill"})
            await until(lambda: stack.clock.sleepers == 1)  # submitted; the task id is kept
            (task,) = simulator.state.tasks.values()
        # The server stopped mid-generation; the same server starts again.
        async with open_stack(database_url, tmp_path / "data", running=running) as stack:
            # The resumed step looks at the task at once, then waits for its callback.
            await until(lambda: stack.polls(task) == 1 and stack.clock.sleepers == 1)
            assert (await asset(stack, made["id"]))["status"] == "PROCESSING"
            stack.clock.advance(task.latency)
            done = await settled(stack, made["id"])
            assert done["status"] == "COMPLETED", done
            assert done["external_task_id"] == task.id
            assert stack.sim.counters()["submissions_total"] == 1  # never submitted twice
            (delivery,) = simulator.state.deliveries
            assert delivery.status == 200, delivery.answer
            assert stack.polls(task) == 2  # once on resuming, once when called back
    finally:
        await simulator.close()
