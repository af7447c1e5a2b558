"""A job's stage is the earliest of its recipe's stages any open item is in: the engine
knows no stage names, on both databases."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.clients.service import LOCAL_CLIENT, ClientService
from conveyor.core.clock import ManualClock
from conveyor.core.db import Database
from conveyor.jobs import repository as repo
from conveyor.jobs.events import EventBus
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import ITEM_COMPLETED, ItemRow, JobRow
from conveyor.queue import QueueRepository

STAGES = ("analyzing", "background", "final")


async def _job_with_items(db: Database, clock: ManualClock, count: int) -> JobRow:
    await ClientService(db, clock).ensure_local_client()
    now = clock.now()
    job = JobRow(
        id="job-1", client_id=LOCAL_CLIENT.id, recipe="three-stages", model=None,
        status="processing", stage=None, priority=0, options={}, languages=None,
        idempotency_key=None, webhook_url=None, total=count, completed=0, failed=0,
        cancelled=0, cost=0.0, error_message=None, source="v1", simulated=False,
        created_at=now, updated_at=now, started_at=now, finished_at=None,
    )  # fmt: skip
    async with db.write() as conn:
        await repo.insert_job(conn, job)
        await repo.insert_items(
            conn,
            [
                {"id": f"item-{n}", "job_id": job.id, "seq": n, "status": "running",
                 "input": {}, "created_at": now, "updated_at": now}
                for n in range(count)
            ],
        )  # fmt: skip
    return job


async def _items(conn: AsyncConnection, job: JobRow) -> list[ItemRow]:
    return await repo.list_items(conn, job.id)


async def test_the_job_is_in_the_earliest_stage_of_its_open_items(db: Database) -> None:
    clock = ManualClock()
    service = ItemService(clock, QueueRepository(db.dialect, clock), EventBus())
    job = await _job_with_items(db, clock, 3)
    async with db.write() as conn:
        first, second, third = await _items(conn, job)
        for item in (first, second, third):
            await service.set_stage(conn, item, "analyzing", STAGES)
        assert (await repo.get_job(conn, job.id)).stage == "analyzing"  # type: ignore[union-attr]
        await service.set_stage(conn, first, "final", STAGES)
        await service.set_stage(conn, second, "background", STAGES)
        # One item is still analyzing: so is the job.
        assert (await repo.get_job(conn, job.id)).stage == "analyzing"  # type: ignore[union-attr]
        await service.set_stage(conn, third, "final", STAGES)
        assert (await repo.get_job(conn, job.id)).stage == "background"  # type: ignore[union-attr]
        # The item holding the job back finishes: the job moves on to what is left.
        fresh = await repo.get_job(conn, job.id)
        assert fresh is not None
        outcome = await service.finish(conn, fresh, second, ITEM_COMPLETED, stages=STAGES)
        assert outcome is not None
        assert outcome.stage == "final"
        assert (await repo.get_job(conn, job.id)).stage == "final"  # type: ignore[union-attr]


async def test_an_item_that_reported_no_stage_counts_as_in_the_first(db: Database) -> None:
    clock = ManualClock()
    service = ItemService(clock, QueueRepository(db.dialect, clock), EventBus())
    job = await _job_with_items(db, clock, 2)
    async with db.write() as conn:
        first, _ = await _items(conn, job)
        await service.set_stage(conn, first, "final", STAGES)
        assert (await repo.get_job(conn, job.id)).stage == "analyzing"  # type: ignore[union-attr]
