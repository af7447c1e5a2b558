"""Running one item: the ``jobs.run_item`` queue handler and closing items.

Each item is one queue task. Its handler loads the item, runs the job's recipe over durable
steps (``jobs.steps``), and closes the item together with the task in one transaction:
a resumed item (after a crash, a retry) pays for nothing twice. See ``recipes.base``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.links import AssetLinks
from conveyor.assets.repository import Asset
from conveyor.errors import ConveyorError
from conveyor.jobs import repository as repo
from conveyor.jobs.events import JobEvent
from conveyor.jobs.files import ItemFiles
from conveyor.jobs.metrics import ITEMS_FINISHED
from conveyor.jobs.models import (
    ITEM_CANCELLED,
    ITEM_COMPLETED,
    ITEM_FAILED,
    ITEM_OPEN,
    ITEM_PENDING,
)
from conveyor.jobs.repository import ItemRow, JobRow, StepRunRow
from conveyor.jobs.schemas import JobOut
from conveyor.jobs.steps import EngineDeps, ItemCancelled, ItemExecution
from conveyor.jobs.webhooks import WEBHOOK_HANDLER
from conveyor.net.errors import FetchError
from conveyor.providers.errors import (
    RetryableProviderError,
)
from conveyor.queue import NewTask, RetryTaskLater, Task, TaskContext
from conveyor.recipes.base import ItemFailed

RUN_ITEM = "jobs.run_item"


class ItemHandler:
    """The ``jobs.run_item`` queue handler."""

    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps
        # The rows of jobs with items running here, shared by those items: thousands of items
        # of one job need one copy, and one query. Dropped when the job's last item ends.
        # (What changes on a job while it runs, cancellation, is watched separately.)
        self._jobs: dict[str, tuple[JobRow, int]] = {}

    async def _job(self, conn: AsyncConnection, job_id: str) -> JobRow | None:
        cached = self._jobs.get(job_id)
        if cached is not None:
            self._jobs[job_id] = (cached[0], cached[1] + 1)
            return cached[0]
        job = await repo.get_job(conn, job_id)
        if job is not None:
            held = self._jobs.get(job_id, (job, 0))[1]
            self._jobs[job_id] = (job, held + 1)
        return job

    def _release_job(self, job_id: str) -> None:
        job, held = self._jobs.get(job_id, (None, 0))
        if held <= 1:
            self._jobs.pop(job_id, None)
        elif job is not None:
            self._jobs[job_id] = (job, held - 1)

    async def __call__(self, ctx: TaskContext) -> None:
        deps = self.deps
        item_id = str(ctx.payload["item_id"])
        async with deps.db.read() as conn:
            item = await repo.get_item(conn, item_id)
            job = await self._job(conn, item.job_id) if item is not None else None
            prior = await repo.step_runs_of(conn, item_id) if item is not None else []
        if item is None or job is None:
            async with deps.db.write() as conn:
                await ctx.complete(conn)
            return
        try:
            await self._run(ctx, job, item, prior)
        finally:
            self._release_job(job.id)

    async def _run(
        self, ctx: TaskContext, job: JobRow, item: ItemRow, prior: list[StepRunRow]
    ) -> None:
        deps = self.deps
        if item.status not in ITEM_OPEN:
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
            # The job row (shared by every item of the job) is updated last, so the lock on
            # it is held for as short a time as possible.
            await ctx.complete(conn)
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
    """A ``job.progress`` event: the job's status and its ``Progress`` as the API shows it."""
    return {"status": job.status, **JobOut.from_row(job).progress.model_dump()}
