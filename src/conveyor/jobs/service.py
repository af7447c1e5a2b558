"""Creating, reading, cancelling and retrying jobs.

A job, its items and one queue task per item are written in one transaction: a job is never
visible without its work queued, and a failed request leaves nothing behind. The same
``idempotency_key`` from the same client returns the existing job instead of a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.service import AssetService
from conveyor.clients.service import Client
from conveyor.content.languages import normalize_languages
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.core.ids import new_id
from conveyor.errors import BadRequest, Conflict, NotFound, ValidationFailed
from conveyor.jobs import repository as repo
from conveyor.jobs.engine import RUN_ITEM, progress_data
from conveyor.jobs.events import EventBus, JobEvent
from conveyor.jobs.models import (
    ITEM_PENDING,
    JOB_ACTIVE,
    JOB_FAILED,
    JOB_PENDING,
)
from conveyor.jobs.repository import ItemRow, JobRow
from conveyor.jobs.schemas import JobCreate, decode_cursor, encode_cursor
from conveyor.providers.registry import ModelRegistry
from conveyor.queue import NewTask, QueueRepository
from conveyor.recipes.base import RecipeRegistry

# Requests that wait for their answer go ahead of batch work.
SYNC_PRIORITY_BOOST = 50


@dataclass(frozen=True, slots=True)
class CreatedJob:
    job: JobRow
    created: bool


@dataclass(frozen=True, slots=True)
class JobSubmission:
    """A validated job, ready to be written; compatibility APIs build these directly."""

    recipe: str
    model: str | None
    items: list[BaseModel]
    item_payloads: list[dict[str, Any]]
    keys: list[str | None]
    options: dict[str, Any]
    languages: list[str] | None
    priority: int
    webhook_url: str | None
    idempotency_key: str | None
    source: str = "v1"


class JobService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        queue: QueueRepository,
        recipes: RecipeRegistry,
        models: ModelRegistry,
        assets: AssetService,
        events: EventBus,
        *,
        max_items: int,
        simulated: bool = False,
    ) -> None:
        self.db = db
        self.clock = clock
        self.queue = queue
        self.recipes = recipes
        self.models = models
        self.assets = assets
        self.events = events
        self.max_items = max_items
        self.simulated = simulated

    # -- creating ----------------------------------------------------------------------

    async def prepare(
        self, client: Client, body: JobCreate, *, source: str = "v1"
    ) -> JobSubmission:
        """Validate a request completely, before anything is written."""
        if len(body.items) > self.max_items:
            raise ValidationFailed(
                f"a job may have at most {self.max_items} items; this one has {len(body.items)}"
            )
        recipe_name = body.recipe or "model"
        recipe = self.recipes.get(recipe_name)
        if recipe is None:
            known = ", ".join(sorted(r.name for r in self.recipes.all()))
            raise ValidationFailed(f"unknown recipe {recipe_name!r}; known recipes: {known}")
        raw_options = dict(body.options)
        if body.model is not None:
            raw_options["model"] = body.model
        options = recipe.parse_options(raw_options)
        self._check_models(recipe.models(options))
        parsed = recipe.parse_items(body.items)
        await self._check_assets(client, [a for item in parsed for a in recipe.file_inputs(item)])
        languages = normalize_languages(body.languages) if body.languages is not None else None
        return JobSubmission(
            recipe=recipe.name,
            model=body.model,
            items=parsed,
            item_payloads=[item.model_dump(mode="json") for item in parsed],
            keys=[recipe.item_key(item) for item in parsed],
            options=options.model_dump(mode="json"),
            languages=languages,
            priority=body.priority + (SYNC_PRIORITY_BOOST if body.wait else 0),
            webhook_url=body.webhook_url,
            idempotency_key=body.idempotency_key,
            source=source,
        )

    def _check_models(self, model_ids: list[str]) -> None:
        unknown = [m for m in model_ids if m not in self.models]
        if unknown:
            raise ValidationFailed(
                f"unknown model(s): {', '.join(unknown)}; see GET /v1/models",
                code="UNKNOWN_MODEL",
            )
        if not model_ids:
            return
        reasons = []
        for model_id in model_ids:
            availability = self.models.get(model_id).availability()  # type: ignore[union-attr]
            if availability.available:
                return
            hint = f" ({availability.enable_with})" if availability.enable_with else ""
            reasons.append(f"{model_id}: {availability.reason}{hint}")
        raise ValidationFailed(
            "no model of this job is available: " + "; ".join(reasons), code="MODEL_UNAVAILABLE"
        )

    async def _check_assets(self, client: Client, asset_ids: list[str]) -> None:
        if not asset_ids:
            return
        found = await self.assets.get_many(sorted(set(asset_ids)))
        missing = [a for a in asset_ids if a not in found or found[a].client_id != client.id]
        if missing:
            raise ValidationFailed(
                f"unknown asset(s): {', '.join(sorted(set(missing))[:10])}", code="UNKNOWN_ASSET"
            )

    async def find_by_idempotency_keys(self, client: Client, keys: list[str]) -> list[JobRow]:
        """The client's jobs created with any of ``keys``, in the order of ``keys``."""
        async with self.db.read() as conn:
            found = await repo.find_jobs_by_idempotency_keys(conn, client.id, keys)
        return [found[key] for key in keys if key in found]

    async def create(self, client: Client, submission: JobSubmission) -> CreatedJob:
        if submission.idempotency_key is not None:
            async with self.db.read() as conn:
                existing = await repo.find_job_by_idempotency_key(
                    conn, client.id, submission.idempotency_key
                )
            if existing is not None:
                return CreatedJob(existing, created=False)
        try:
            async with self.db.write() as conn:
                job = await self._insert(conn, client, submission)
        except IntegrityError:
            # Two requests with one key raced; the other one won.
            if submission.idempotency_key is None:
                raise
            async with self.db.read() as conn:
                existing = await repo.find_job_by_idempotency_key(
                    conn, client.id, submission.idempotency_key
                )
            if existing is None:
                raise
            return CreatedJob(existing, created=False)
        return CreatedJob(job, created=True)

    async def _insert(self, conn: AsyncConnection, client: Client, s: JobSubmission) -> JobRow:
        now = self.clock.now()
        job_id = new_id()
        values: dict[str, Any] = {
            "id": job_id,
            "client_id": client.id,
            "recipe": s.recipe,
            "model": s.model,
            "status": JOB_PENDING,
            "stage": None,
            "priority": s.priority,
            "options": s.options,
            "languages": s.languages,
            "idempotency_key": s.idempotency_key,
            "webhook_url": s.webhook_url,
            "total": len(s.item_payloads),
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "cost": 0.0,
            "error_message": None,
            "source": s.source,
            "simulated": self.simulated,
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "finished_at": None,
        }
        await repo.insert_job(conn, values)
        item_ids = [new_id() for _ in s.item_payloads]
        await repo.insert_items(
            conn,
            [
                {
                    "id": item_id,
                    "job_id": job_id,
                    "seq": seq,
                    "key": key,
                    "status": ITEM_PENDING,
                    "stage": None,
                    "input": payload,
                    "runs": 0,
                    "cost": 0.0,
                    "created_at": now,
                    "updated_at": now,
                }
                for seq, (item_id, key, payload) in enumerate(
                    zip(item_ids, s.keys, s.item_payloads, strict=True)
                )
            ],
        )
        await self._enqueue_items(conn, job_id, item_ids, s.priority)
        return repo.job_row(_Values(values))

    async def _enqueue_items(
        self, conn: AsyncConnection, job_id: str, item_ids: list[str], priority: int
    ) -> None:
        await self.queue.enqueue(
            conn,
            [
                NewTask(RUN_ITEM, {"item_id": item_id}, priority=priority, group_key=job_id)
                for item_id in item_ids
            ],
        )

    # -- reading -----------------------------------------------------------------------

    async def get(self, client: Client | None, job_id: str) -> JobRow:
        """The job; ``client=None`` reads by id alone (the id is the capability)."""
        async with self.db.read() as conn:
            job = await repo.get_job(conn, job_id)
        if job is None or (client is not None and job.client_id != client.id):
            raise NotFound(f"job {job_id} not found", code="JOB_NOT_FOUND")
        return job

    async def list_jobs(
        self,
        client: Client,
        *,
        status: str | None,
        limit: int,
        cursor: str | None = None,
        offset: int = 0,
        source: str | None = None,
    ) -> tuple[list[JobRow], str | None]:
        before: tuple[datetime, str] | None = None
        if cursor:
            raw = decode_cursor(cursor)
            try:
                before = (datetime.fromisoformat(str(raw["t"])), str(raw["id"]))
            except (KeyError, ValueError) as exc:
                raise BadRequest("invalid cursor", code="INVALID_CURSOR") from exc
        async with self.db.read() as conn:
            rows = await repo.list_jobs(
                conn,
                client_id=client.id,
                status=status,
                limit=limit + 1,
                before=before,
                offset=offset,
                source=source,
            )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = (
            encode_cursor({"t": page[-1].created_at.isoformat(), "id": page[-1].id})
            if more and page
            else None
        )
        return page, next_cursor

    async def items(
        self, job: JobRow, *, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[ItemRow], str | None]:
        after = -1
        if cursor:
            raw = decode_cursor(cursor)
            if not isinstance(raw.get("seq"), int):
                raise BadRequest("invalid cursor", code="INVALID_CURSOR")
            after = raw["seq"]
        async with self.db.read() as conn:
            rows = await repo.list_items(
                conn, job.id, after_seq=after, limit=None if limit is None else limit + 1
            )
        if limit is None:
            return rows, None
        page, more = rows[:limit], len(rows) > limit
        return page, encode_cursor({"seq": page[-1].seq}) if more and page else None

    async def items_finished_since(self, job: JobRow, since: datetime) -> list[ItemRow]:
        async with self.db.read() as conn:
            return await repo.items_finished_since(conn, job.id, since)

    # -- changing ----------------------------------------------------------------------

    async def cancel(self, client: Client | None, job_id: str) -> JobRow:
        job = await self.get(client, job_id)
        if job.status not in JOB_ACTIVE:
            return job
        async with self.db.write() as conn:
            await repo.cancel_job(conn, job, self.clock.now())
            await self.queue.cancel_group(conn, job.id)
            updated = await repo.get_job(conn, job.id)
            assert updated is not None
            await self.events.emit(conn, JobEvent(job.id, "job.cancelled", {}))
            await self.events.emit(conn, JobEvent(job.id, "job.progress", progress_data(updated)))
            await self.events.emit(
                conn, JobEvent(job.id, "job.finished", {"status": updated.status})
            )
        return updated

    async def retry(self, client: Client, job_id: str) -> tuple[JobRow, int]:
        """Run the failed items again (finished steps are reused, failed ones re-tried)."""
        job = await self.get(client, job_id)
        if job.status in JOB_ACTIVE and job.failed == 0:
            return job, 0
        if job.status not in (*JOB_ACTIVE, JOB_FAILED) and job.failed == 0:
            raise Conflict(f"job {job_id} has no failed items to retry", code="NOTHING_TO_RETRY")
        async with self.db.write() as conn:
            reopened = await repo.reopen_failed_items(conn, job, self.clock.now())
            await self._enqueue_items(conn, job.id, [i.id for i in reopened], job.priority)
            updated = await repo.get_job(conn, job.id)
            assert updated is not None
            await self.events.emit(conn, JobEvent(job.id, "job.progress", progress_data(updated)))
        return updated, len(reopened)

    # -- waiting -----------------------------------------------------------------------

    async def wait(self, job_id: str, timeout: float, *, recheck: float = 1.0) -> JobRow:
        """Return the job once finished or when ``timeout`` passes, whichever is first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.events.subscribe(job_id) as queue:
            while True:
                async with self.db.read() as conn:
                    job = await repo.get_job(conn, job_id)
                if job is None:
                    raise NotFound(f"job {job_id} not found", code="JOB_NOT_FOUND")
                remaining = deadline - loop.time()
                if job.finished or remaining <= 0:
                    return job
                # Events wake us early; the re-check covers workers in other processes.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(recheck, remaining)):
                        while True:
                            event = await queue.get()
                            if event.type in ("job.finished", "job.cancelled"):
                                break


class _Values:
    """Attribute access over an insert's values, to build the row without re-reading it."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
