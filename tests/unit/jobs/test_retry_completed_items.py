"""Retry can re-run completed items a recipe finished only in part (a word whose audio
failed); counts of items that ended at least once never go back while it does."""

from __future__ import annotations

from sqlalchemy import func, select

from conveyor.assets.service import AssetService
from conveyor.clients.service import LOCAL_CLIENT, ClientService
from conveyor.config import Settings
from conveyor.core.clock import ManualClock
from conveyor.core.db import Database
from conveyor.jobs import repository as repo
from conveyor.jobs.events import EventBus
from conveyor.jobs.items import ItemService
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService
from conveyor.providers.registry import ModelRegistry
from conveyor.queue import QueueRepository
from conveyor.queue.models import queue_tasks
from conveyor.recipes.base import RecipeRegistry
from conveyor.recipes.catalog import default_recipes
from conveyor.storage import MemoryStorage
from tests.support.adapters import ScriptedModel


async def test_failed_and_chosen_completed_items_run_again(db: Database) -> None:
    clock = ManualClock()
    await ClientService(db, clock).ensure_local_client()
    queue = QueueRepository(db.dialect, clock)
    events = EventBus()
    jobs = JobService(
        clock,
        queue,
        RecipeRegistry(default_recipes(Settings(_env_file=None))),
        ModelRegistry([ScriptedModel()]),
        AssetService(MemoryStorage(), clock, max_upload_bytes=1 << 20),
        events,
        max_items=10,
    )
    items = ItemService(clock, queue, events)
    body = JobCreate(model="test/echo", items=[{"text": t} for t in "abc"])
    async with db.write() as conn:
        job = (await jobs.create(conn, LOCAL_CLIENT, jobs.prepare(body))).job
        first, second, third = await repo.list_items(conn, job.id)
        for item, status in ((first, "completed"), (second, "failed"), (third, "completed")):
            current = await repo.get_job(conn, job.id)
            assert current is not None
            await items.finish(conn, current, item, status)
        assert await jobs.settled(conn, [job.id]) == {job.id: 3}
        await conn.execute(queue_tasks.delete())

    async with db.write() as conn:
        retried, count = await jobs.retry(conn, LOCAL_CLIENT, job.id, completed_too=[third.id])
        assert count == 2
        assert (retried.status, retried.completed, retried.failed) == ("processing", 1, 0)
        reopened = {i.id: (i.status, i.runs) for i in await repo.list_items(conn, job.id)}
        assert reopened == {
            first.id: ("completed", 0),
            second.id: ("pending", 1),
            third.id: ("pending", 1),
        }
        # Reopened items stay counted as having ended once: progress does not go back.
        assert await jobs.settled(conn, [job.id]) == {job.id: 3}
        assert await conn.scalar(select(func.count()).select_from(queue_tasks)) == 2

    async with db.write() as conn:
        # Asked again, nothing is reopened twice.
        again, count = await jobs.retry(conn, LOCAL_CLIENT, job.id, completed_too=[third.id])
        assert count == 0
        assert again.completed == 1
