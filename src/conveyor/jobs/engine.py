"""Running one item: the queue handler, durable steps, and the cancellation watch.

Each item is one queue task. Its handler loads the item, runs the job's recipe, and closes
the item together with the task in one transaction. Steps are checkpointed in ``step_runs``:
a provider task id is committed before the first poll, a finished step's output is kept, so
a resumed item (after a crash, a retry) pays for nothing twice. See ``recipes.base``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.links import AssetLinks
from conveyor.assets.repository import Asset
from conveyor.assets.service import AssetService
from conveyor.core.clock import Clock
from conveyor.core.db import Database, after_commit
from conveyor.core.ids import new_id
from conveyor.core.periodic import cancelling
from conveyor.errors import ConveyorError
from conveyor.jobs import repository as repo
from conveyor.jobs.events import EventBus, JobEvent
from conveyor.jobs.files import Downloader, ItemFiles
from conveyor.jobs.metrics import ITEMS_FINISHED, STEP_SECONDS
from conveyor.jobs.models import (
    ITEM_CANCELLED,
    ITEM_COMPLETED,
    ITEM_FAILED,
    ITEM_OPEN,
    ITEM_PENDING,
    STEP_CANCELLED,
    STEP_FAILED,
    STEP_RUNNING,
    STEP_SUCCEEDED,
)
from conveyor.jobs.repository import ItemRow, JobRow, StepRunRow
from conveyor.jobs.webhooks import WEBHOOK_HANDLER
from conveyor.net.errors import FetchError
from conveyor.providers.base import ModelCall, ModelOutput, ProviderState, StoredFile
from conveyor.providers.errors import (
    PermanentProviderError,
    ProviderCancelled,
    RetryableProviderError,
)
from conveyor.providers.registry import ModelRegistry
from conveyor.queue import NewTask, QueueRepository, RetryTaskLater, Task, TaskContext
from conveyor.queue.cpu import CpuPoolBroken
from conveyor.recipes.base import ItemFailed, RecipeRegistry

log = logging.getLogger(__name__)

RUN_ITEM = "jobs.run_item"


class ItemCancelled(Exception):
    """The job was cancelled while the item ran."""


class CancellationWatch:
    """Which in-flight jobs were cancelled: told by events, and re-checked every few seconds
    with one query for all tracked jobs (events from other processes may not reach us)."""

    def __init__(self, db: Database, events: EventBus, *, interval: float = 2.0) -> None:
        self._db = db
        self._events = events
        self._interval = interval
        self._tracked: dict[str, int] = {}
        self._cancelled: set[str] = set()

    def track(self, job_id: str) -> None:
        self._tracked[job_id] = self._tracked.get(job_id, 0) + 1

    def untrack(self, job_id: str) -> None:
        left = self._tracked.get(job_id, 0) - 1
        if left <= 0:
            self._tracked.pop(job_id, None)
            self._cancelled.discard(job_id)
        else:
            self._tracked[job_id] = left

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled

    async def run(self) -> None:
        with self._events.subscribe() as queue:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        while True:
                            event = await queue.get()
                            if event.type == "job.cancelled" and event.job_id in self._tracked:
                                self._cancelled.add(event.job_id)
                if self._tracked:
                    try:
                        async with self._db.read() as conn:
                            self._cancelled |= await repo.cancelled_among(conn, list(self._tracked))
                    except Exception:
                        if cancelling():
                            raise asyncio.CancelledError() from None
                        log.exception("cancellation check failed")


@dataclass
class EngineDeps:
    """Everything the item handler needs; built once per worker process."""

    db: Database
    clock: Clock
    queue: QueueRepository
    recipes: RecipeRegistry
    models: ModelRegistry
    assets: AssetService
    downloader: Downloader
    events: EventBus
    watch: CancellationWatch
    max_input_bytes: int = 25 * 1024 * 1024
    # How remote providers reach stored inputs when storage can't presign (public_url set).
    asset_links: AssetLinks | None = None


def _step_output(output: ModelOutput) -> dict[str, Any]:
    return {
        "model_id": output.model_id,
        "text": output.text,
        "data": output.data,
        "cost": output.cost,
        "files": [
            {"asset_id": f.asset_id, "mime_type": f.mime_type, "size": f.size, "sha256": f.sha256}
            for f in output.files
        ],
    }


def _model_output(saved: dict[str, Any]) -> ModelOutput:
    return ModelOutput(
        text=saved.get("text"),
        data=saved.get("data"),
        files=[StoredFile(**f) for f in saved.get("files") or []],
        cost=saved.get("cost"),
        model_id=saved.get("model_id"),
    )


@dataclass
class ItemExecution:
    """One run of a recipe over one item; implements ``recipes.base.ItemRun``."""

    deps: EngineDeps
    job: JobRow
    item: ItemRow
    prior: list[StepRunRow]
    files: ItemFiles
    cost: float = 0.0
    warnings: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    last_model: str | None = None
    started: bool = False

    @property
    def item_id(self) -> str:
        return self.item.id

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def client_id(self) -> str:
        return self.job.client_id

    @property
    def key(self) -> str | None:
        return self.item.key

    @property
    def input(self) -> dict[str, Any]:
        return self.item.input

    @property
    def options(self) -> dict[str, Any]:
        return self.job.options

    @property
    def languages(self) -> list[str]:
        return list(self.job.languages or [])

    def now(self) -> datetime:
        return self.deps.clock.now()

    async def sleep(self, seconds: float) -> None:
        await self.deps.clock.sleep(seconds)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def cancelled(self) -> bool:
        return self.deps.watch.is_cancelled(self.job.id)

    async def _record(self, conn: AsyncConnection) -> None:
        """What every write of this run carries: the item's start, and new files' rows."""
        if not self.started:
            await repo.start_item(conn, self.item, self.now())

            def mark() -> None:
                self.started = True

            after_commit(conn, mark)
        await self.files.flush(conn)

    async def set_stage(self, stage: str) -> None:
        async with self.deps.db.write() as conn:
            await self._record(conn)
            if await repo.set_item_stage(conn, self.item, stage, self.now()):
                await self.deps.events.emit(
                    conn, JobEvent(self.job.id, "job.status", {"status": "translating"})
                )

    async def fetch_input(self, url: str, *, images_only: bool = False) -> StoredFile:
        stored = await self.files.store_input(url)
        if images_only and not stored.mime_type.startswith("image/"):
            raise ItemFailed(
                f"{url} is not an image (it is {stored.mime_type})", code="NOT_AN_IMAGE"
            )
        return stored

    async def step(self, name: str, models: Sequence[str], inputs: dict[str, Any]) -> ModelOutput:
        for row in reversed(self.prior):
            if row.step == name and row.status == STEP_SUCCEEDED and row.output is not None:
                output = _model_output(row.output)
                self._note(name, output.model_id, [])
                return output
        this_run = [r for r in self.prior if r.step == name and r.item_run == self.item.runs]
        tried: list[dict[str, str]] = []
        retryable: RetryableProviderError | None = None
        for index, model_id in enumerate(models):
            earlier = [r for r in this_run if r.model_id == model_id]
            permanent = next(
                (r for r in earlier if r.status == STEP_FAILED and not r.retryable), None
            )
            if permanent is not None:
                tried.append({"model": model_id, "error": permanent.error or "failed"})
                continue
            adapter = self.deps.models.get(model_id)
            if adapter is None:
                tried.append({"model": model_id, "error": "unknown model"})
                continue
            availability = adapter.availability()
            if not availability.available:
                tried.append({"model": model_id, "error": availability.reason or "unavailable"})
                continue
            try:
                output = await self._call(name, model_id, index, earlier, inputs)
            except PermanentProviderError as exc:
                tried.append({"model": model_id, "error": exc.message})
                continue
            except RetryableProviderError as exc:
                tried.append({"model": model_id, "error": exc.message})
                retryable = exc
                continue
            self._note(name, model_id, tried)
            return output
        summary = "; ".join(f"{t['model']}: {t['error']}" for t in tried) or "no model configured"
        if retryable is not None:
            raise RetryTaskLater(f"step {name!r}: {summary}", delay=retryable.retry_after)
        raise ItemFailed(f"step {name!r} failed: {summary}", code="STEP_FAILED")

    def _note(self, step: str, model_id: str | None, tried: list[dict[str, str]]) -> None:
        self.last_model = model_id
        self.provenance[step] = {"model": model_id, **({"fallback_from": tried} if tried else {})}

    async def _call(
        self,
        step: str,
        model_id: str,
        index: int,
        earlier: list[StepRunRow],
        inputs: dict[str, Any],
    ) -> ModelOutput:
        resume_row = next(
            (r for r in earlier if r.status == STEP_RUNNING and r.external_task_id), None
        )
        failures = sum(1 for r in earlier if r.status == STEP_FAILED)
        row_id = resume_row.id if resume_row else new_id()
        started = resume_row.started_at if resume_row else self.now()
        base = {
            "id": row_id,
            "item_id": self.item.id,
            "step": step,
            "model_id": model_id,
            "chain_index": index,
            "item_run": self.item.runs,
            "attempt": failures + 1,
            "started_at": started,
        }
        db = self.deps.db

        async def checkpoint(state: ProviderState) -> None:
            async with db.write() as conn:
                await self._record(conn)
                await repo.save_step_run(
                    conn,
                    {
                        **base,
                        "status": STEP_RUNNING,
                        "external_task_id": state.external_task_id,
                        "provider_state": state.data,
                    },
                )

        call = ModelCall(
            model_id=model_id,
            inputs=inputs,
            # Stable across a crash before the checkpoint: the provider can de-duplicate.
            idempotency_key=f"{self.item.id}:{self.item.runs}:{step}:{model_id}:{failures + 1}",
            files=self.files,
            is_cancelled=self.cancelled,
        )
        resume = (
            ProviderState(resume_row.external_task_id, resume_row.provider_state or {})
            if resume_row and resume_row.external_task_id
            else None
        )
        timer = time.perf_counter()
        outcome = "failed"
        try:
            output = await self.deps.models.get(model_id).run(  # type: ignore[union-attr]
                call, resume=resume, checkpoint=checkpoint
            )
            outcome = "succeeded"
        except ProviderCancelled as exc:
            await self._save(base, STEP_CANCELLED, error=exc.message)
            raise ItemCancelled() from exc
        except (PermanentProviderError, RetryableProviderError) as exc:
            await self._save(
                base,
                STEP_FAILED,
                error=exc.message,
                retryable=isinstance(exc, RetryableProviderError),
            )
            raise
        except CpuPoolBroken as exc:
            await self._save(base, STEP_FAILED, error=str(exc), retryable=True)
            raise RetryableProviderError(str(exc)) from exc
        except FetchError as exc:
            await self._save(base, STEP_FAILED, error=exc.message, retryable=exc.retryable)
            if exc.retryable:
                raise RetryableProviderError(exc.message) from exc
            raise PermanentProviderError(exc.message) from exc
        except ConveyorError as exc:
            # Input problems surfacing inside a model (a file too large, a refused URL...).
            await self._save(base, STEP_FAILED, error=exc.message)
            raise PermanentProviderError(exc.message) from exc
        finally:
            STEP_SECONDS.labels(model_id, outcome).observe(time.perf_counter() - timer)
        output.model_id = model_id
        self.cost += output.cost or 0.0
        await self._save(base, STEP_SUCCEEDED, output=_step_output(output), cost=output.cost)
        return output

    async def _save(
        self,
        base: dict[str, Any],
        status: str,
        *,
        error: str | None = None,
        retryable: bool = False,
        output: dict[str, Any] | None = None,
        cost: float | None = None,
    ) -> None:
        async with self.deps.db.write() as conn:
            await self._record(conn)
            await repo.save_step_run(
                conn,
                {
                    **base,
                    "status": status,
                    "error": error,
                    "retryable": retryable,
                    "output": output,
                    "cost": cost,
                    "finished_at": self.now(),
                },
            )


class ItemHandler:
    """The ``jobs.run_item`` queue handler."""

    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps

    async def __call__(self, ctx: TaskContext) -> None:
        deps = self.deps
        item_id = str(ctx.payload["item_id"])
        async with deps.db.read() as conn:
            item = await repo.get_item(conn, item_id)
            job = await repo.get_job(conn, item.job_id) if item is not None else None
            prior = await repo.step_runs_of(conn, item_id) if item is not None else []
        if item is None or job is None or item.status not in ITEM_OPEN:
            async with deps.db.write() as conn:
                await ctx.complete(conn)
            return
        recipe = deps.recipes.get(job.recipe)
        if recipe is None:
            await self._finish(ctx, job, item, ITEM_FAILED, error=f"unknown recipe {job.recipe!r}")
            return
        files = ItemFiles(
            deps.assets,
            deps.downloader,
            client_id=job.client_id,
            job_id=job.id,
            item_id=item.id,
            max_bytes=deps.max_input_bytes,
            link_for=_link_maker(deps.asset_links),
        )
        run = ItemExecution(deps, job, item, prior, files, started=item.status != ITEM_PENDING)
        deps.watch.track(job.id)
        try:
            output = await recipe.run(run)
        except ItemFailed as exc:
            await self._finish(ctx, job, item, ITEM_FAILED, run, error=exc.message, code=exc.code)
        except ItemCancelled:
            await self._finish(ctx, job, item, ITEM_CANCELLED, run)
        except RetryableProviderError as exc:
            raise RetryTaskLater(exc.message, delay=exc.retry_after) from exc
        except FetchError as exc:
            if exc.retryable:
                raise RetryTaskLater(exc.message) from exc
            await self._finish(ctx, job, item, ITEM_FAILED, run, error=exc.message, code=exc.code)
        except ConveyorError as exc:
            if exc.status_code >= 500:
                raise
            await self._finish(ctx, job, item, ITEM_FAILED, run, error=exc.message, code=exc.code)
        else:
            await self._finish(ctx, job, item, ITEM_COMPLETED, run, output=output)
        finally:
            deps.watch.untrack(job.id)

    async def _finish(
        self,
        ctx: TaskContext,
        job: JobRow,
        item: ItemRow,
        status: str,
        run: ItemExecution | None = None,
        *,
        output: dict[str, Any] | None = None,
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        if run is not None:
            output = dict(output or {})
            if run.warnings:
                output["warnings"] = run.warnings
            if run.provenance:
                output["provenance"] = run.provenance
        async with self.deps.db.write() as conn:
            if run is not None:
                await run.files.flush(conn)
            await close_item(
                self.deps,
                conn,
                job,
                item,
                status,
                output=output or None,
                error=error,
                code=code,
                model_used=run.last_model if run else None,
                cost=run.cost if run else 0.0,
            )
            await ctx.complete(conn)

    async def on_dead(self, conn: AsyncConnection, task: Task, error: str) -> None:
        """The task ran out of attempts: the item fails with the last error."""
        item = await repo.get_item(conn, str(task.payload.get("item_id")))
        job = await repo.get_job(conn, item.job_id) if item is not None else None
        if item is None or job is None:
            return
        message = error.splitlines()[0] if error else "failed"
        await close_item(
            self.deps,
            conn,
            job,
            item,
            ITEM_FAILED,
            error=f"gave up after {task.attempts + 1} attempts: {message}",
            code="ATTEMPTS_EXHAUSTED",
        )


async def close_item(
    deps: EngineDeps,
    conn: AsyncConnection,
    job: JobRow,
    item: ItemRow,
    status: str,
    *,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    code: str | None = None,
    model_used: str | None = None,
    cost: float = 0.0,
) -> None:
    """Close the item, count it on the job, publish, and queue the webhook if it was last."""
    recipe = deps.recipes.get(job.recipe)
    outcome = await repo.finish_item(
        conn,
        item,
        status=status,
        now=deps.clock.now(),
        output=output,
        error=error,
        error_code=code,
        model_used=model_used,
        cost=cost,
        multi_stage=recipe is not None and len(recipe.stages) > 1,
    )
    if outcome is None:
        return
    ITEMS_FINISHED.labels(job.recipe, status).inc()
    updated = outcome.job
    await deps.events.emit(
        conn,
        JobEvent(
            job.id,
            f"item.{status}",
            {"item_id": item.id, "key": item.key, "seq": item.seq, "error": error},
        ),
    )
    await deps.events.emit(conn, JobEvent(job.id, "job.progress", progress_data(updated)))
    if outcome.finished_status is not None:
        await deps.events.emit(
            conn, JobEvent(job.id, "job.finished", {"status": outcome.finished_status})
        )
        if updated.webhook_url:
            await deps.queue.enqueue(
                conn,
                [
                    NewTask(
                        WEBHOOK_HANDLER,
                        {"job_id": job.id, "event": "job.finished"},
                        group_key=None,
                        max_attempts=8,
                    )
                ],
            )


def _link_maker(links: AssetLinks | None) -> Callable[[Asset], Awaitable[str | None]] | None:
    if links is None:
        return None

    async def link_for(asset: Asset) -> str | None:
        return links.url(asset.id)

    return link_for


def progress_data(job: JobRow) -> dict[str, Any]:
    done = job.completed + job.failed + job.cancelled
    return {
        "status": job.status,
        "total": job.total,
        "completed": job.completed,
        "failed": job.failed,
        "cancelled": job.cancelled,
        "percent": round(100.0 * done / job.total, 1) if job.total else 100.0,
    }
