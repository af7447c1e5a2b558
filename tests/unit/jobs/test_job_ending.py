"""A job's end is announced once: a cancel that races the last item's finish (PostgreSQL,
two transactions at once) must not queue a second webhook for a job the finish ended."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, text

from conveyor.assets.service import AssetService
from conveyor.clients.service import LOCAL_CLIENT, ClientService
from conveyor.config import Settings
from conveyor.core.clock import ManualClock
from conveyor.core.db import Database
from conveyor.jobs import repository as repo
from conveyor.jobs.events import EventBus
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import JobRow
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService
from conveyor.jobs.tasks import DELIVER_WEBHOOK
from conveyor.providers.registry import ModelRegistry
from conveyor.queue import QueueRepository
from conveyor.queue.models import queue_tasks
from conveyor.recipes.base import RecipeRegistry
from conveyor.recipes.catalog import default_recipes
from conveyor.storage import MemoryStorage
from tests.support.adapters import ScriptedModel


async def _blocked_on_a_lock(db: Database) -> None:
    """Until another backend of this database waits for a row lock."""
    async with asyncio.timeout(20):
        while True:
            async with db.read() as conn:
                waiting = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            if waiting:
                return
            await asyncio.sleep(0.01)


async def test_a_cancel_racing_the_last_item_sends_no_second_webhook(db: Database) -> None:
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
    body = JobCreate(
        model="test/echo", items=[{"text": "a"}], webhook_url="http://hooks.example/done"
    )
    async with db.write() as conn:
        job = (await jobs.create(conn, LOCAL_CLIENT, jobs.prepare(body))).job
        (item,) = await repo.list_items(conn, job.id)

    async def cancel() -> JobRow:
        async with db.write() as conn:
            return await jobs.cancel(conn, LOCAL_CLIENT, job.id)

    if db.is_sqlite:
        # One writer: the two can only run one after the other.
        async with db.write() as conn:
            await items.finish(conn, job, item, "completed")
        cancelled = await cancel()
    else:
        async with db.write() as conn:
            await items.finish(conn, job, item, "completed")
            # The cancel reads the job still active, then waits on the rows we hold; it
            # goes on only once this transaction has ended the job.
            racing = asyncio.create_task(cancel())
            await _blocked_on_a_lock(db)
        cancelled = await racing

    assert cancelled.status == "completed"
    async with db.read() as conn:
        webhooks = await conn.scalar(
            select(func.count())
            .select_from(queue_tasks)
            .where(queue_tasks.c.handler == DELIVER_WEBHOOK)
        )
        final = await repo.get_job(conn, job.id)
    assert final is not None
    assert (final.status, final.completed, final.cancelled) == ("completed", 1, 0)
    assert webhooks == 1
