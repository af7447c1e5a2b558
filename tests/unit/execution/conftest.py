"""An engine to drive by hand: real database, real item service, scripted model adapters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conveyor.assets.service import AssetService
from conveyor.clients.service import LOCAL_CLIENT, ClientService
from conveyor.config import Settings
from conveyor.core.clock import ManualClock
from conveyor.core.db import Database
from conveyor.execution.cancellation import CancellationWatch
from conveyor.execution.engine import EngineDeps
from conveyor.execution.files import ItemFiles
from conveyor.execution.steps import ItemExecution
from conveyor.jobs import repository as repo
from conveyor.jobs.events import EventBus
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import JobRow
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService
from conveyor.providers.base import ModelAdapter
from conveyor.providers.registry import ModelRegistry
from conveyor.queue import QueueRepository
from conveyor.recipes.base import RecipeRegistry
from conveyor.recipes.catalog import default_recipes
from conveyor.storage import MemoryStorage
from tests.support.adapters import ScriptedModel


@dataclass
class Engine:
    db: Database
    deps: EngineDeps
    jobs: JobService
    models: ModelRegistry

    async def job(self, body: dict[str, Any]) -> JobRow:
        submission = self.jobs.prepare(JobCreate.model_validate(body))
        async with self.db.write() as conn:
            return (await self.jobs.create(conn, LOCAL_CLIENT, submission)).job

    async def run_of(self, job: JobRow, seq: int = 0) -> ItemExecution:
        """A fresh run of the job's item ``seq``, with its step history as stored now."""
        async with self.db.read() as conn:
            item = (await repo.list_items(conn, job.id))[seq]
            prior = await repo.step_runs_of(conn, item.id)
            fresh_job = await repo.get_job(conn, job.id)
        assert fresh_job is not None
        files = ItemFiles(
            self.db,
            self.deps.assets,
            self.deps.downloader,
            client_id=job.client_id,
            job_id=job.id,
            item_id=item.id,
            max_bytes=1 << 20,
        )
        return ItemExecution(self.deps, fresh_job, item, prior, files)


@pytest.fixture
async def engine(db: Database) -> Callable[..., Engine]:
    clock = ManualClock()
    await ClientService(db, clock).ensure_local_client()
    events = EventBus()
    queue = QueueRepository(db.dialect, clock)
    assets = AssetService(MemoryStorage(), clock, max_upload_bytes=1 << 20)
    items = ItemService(clock, queue, events)

    def make(*adapters: ModelAdapter) -> Engine:
        models = ModelRegistry(adapters or [ScriptedModel()])
        recipes = RecipeRegistry(default_recipes(Settings(_env_file=None)))
        jobs = JobService(clock, queue, recipes, models, assets, events, max_items=100)
        deps = EngineDeps(
            db=db,
            clock=clock,
            items=items,
            recipes=recipes,
            models=models,
            assets=assets,
            downloader=NoDownloads(),
            results=NoDownloads(),
            watch=CancellationWatch(db, events, items),
        )
        return Engine(db, deps, jobs, models)

    return make


class NoDownloads:
    """The engine's downloader for tests whose items never fetch a URL."""

    def stream(self, url: str, **_: Any) -> Any:
        raise AssertionError(f"unexpected fetch of {url}")

    async def vet(self, url: str) -> object:
        raise AssertionError(f"unexpected URL handed on: {url}")
