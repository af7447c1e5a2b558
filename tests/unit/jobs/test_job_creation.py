"""Creating a job is one transaction: the job, its items and their tasks, or nothing; the
same idempotency key never makes two jobs, even when two requests race."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from conveyor.assets.service import AssetService
from conveyor.clients.service import LOCAL_CLIENT, ClientService
from conveyor.config import Settings
from conveyor.core.clock import ManualClock
from conveyor.core.db import Database
from conveyor.errors import ValidationFailed
from conveyor.jobs.events import EventBus
from conveyor.jobs.models import items, jobs
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService
from conveyor.providers.registry import ModelRegistry
from conveyor.queue import QueueRepository
from conveyor.queue.models import queue_tasks
from conveyor.recipes.base import RecipeRegistry
from conveyor.recipes.catalog import default_recipes
from conveyor.storage import MemoryStorage
from tests.support.adapters import ScriptedModel


async def _service(db: Database) -> JobService:
    clock = ManualClock()
    await ClientService(db, clock).ensure_local_client()
    return JobService(
        clock,
        QueueRepository(db.dialect, clock),
        RecipeRegistry(default_recipes(Settings(_env_file=None))),
        ModelRegistry([ScriptedModel()]),
        AssetService(MemoryStorage(), clock, max_upload_bytes=1 << 20),
        EventBus(),
        max_items=100,
    )


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.read() as conn:
        return (
            int(await conn.scalar(select(func.count()).select_from(jobs)) or 0),
            int(await conn.scalar(select(func.count()).select_from(items)) or 0),
            int(await conn.scalar(select(func.count()).select_from(queue_tasks)) or 0),
        )


async def test_racing_requests_with_one_key_make_one_job(db: Database) -> None:
    service = await _service(db)
    body = JobCreate(model="test/echo", items=[{"text": "a"}], idempotency_key="k-1")

    async def create() -> tuple[str, bool]:
        async with db.write() as conn:
            created = await service.create(conn, LOCAL_CLIENT, service.prepare(body))
        return created.job.id, created.created

    results = await asyncio.gather(*(create() for _ in range(5)))
    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(made for _, made in results) == [False, False, False, False, True]
    assert await _counts(db) == (1, 1, 1)


async def test_a_refused_job_leaves_nothing_behind(db: Database) -> None:
    service = await _service(db)
    body = JobCreate(model="test/echo", items=[{"image": {"asset_id": "not-mine"}}])
    with pytest.raises(ValidationFailed, match="unknown asset"):
        async with db.write() as conn:
            await service.create(conn, LOCAL_CLIENT, service.prepare(body))
    assert await _counts(db) == (0, 0, 0)
