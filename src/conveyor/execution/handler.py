"""Running one item: the ``jobs.run_item`` queue handler.

Each item is one queue task. Its handler loads the item, runs the job's recipe over durable
steps (``execution.steps``), and closes the item together with the task in one transaction:
a resumed item (after a crash, a retry) pays for nothing twice. See ``recipes.base``.

What an error means for the item is decided here, in one place (``item_outcome``):

    the recipe returned             completed
    ItemCancelled                   cancelled
    TimeBudgetExceeded              failed, code TIMEOUT (the recipe's ``time_limit``)
    a ConveyorError, not retryable  failed, with its message and code
    anything else                   raised to the queue, which runs the item again later
                                    (with the error's ``retry_after``) until its attempts
                                    run out; then ``on_dead`` fails the item
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.links import AssetLinks
from conveyor.assets.models import Asset
from conveyor.core.time_budget import TimeBudget, TimeBudgetExceeded
from conveyor.errors import ConveyorError
from conveyor.execution.engine import EngineDeps
from conveyor.execution.files import ItemFiles
from conveyor.execution.metrics import ITEMS_FINISHED
from conveyor.execution.polling import StepNews, Waiting
from conveyor.execution.steps import ItemCancelled, ItemExecution, StepParked
from conveyor.jobs.models import (
    ITEM_CANCELLED,
    ITEM_COMPLETED,
    ITEM_FAILED,
    ITEM_OPEN,
    ITEM_PENDING,
    ItemRow,
    JobRow,
    StepRunRow,
)
from conveyor.jobs.service import SYNC_PRIORITY_BOOST
from conveyor.queue import Task, TaskContext, TaskParked


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    status: str
    error: str | None = None
    code: str | None = None


def item_outcome(exc: BaseException) -> ItemOutcome | None:
    """How an error a recipe raised ends the item; None: the queue should run it again."""
    if isinstance(exc, ItemCancelled):
        return ItemOutcome(ITEM_CANCELLED)
    if isinstance(exc, TimeBudgetExceeded):
        return ItemOutcome(
            ITEM_FAILED,
            f"timeout: processing took longer than {exc.seconds:g} s, the time limit per item "
            "(waits for a free engine or provider slot not counted)",
            "TIMEOUT",
        )
    if isinstance(exc, ConveyorError) and not exc.retryable:
        return ItemOutcome(ITEM_FAILED, exc.message, exc.code)
    return None


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
        job = await self.deps.items.get_job(conn, job_id)
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
            item = await deps.items.get_item(conn, item_id)
            job = await self._job(conn, item.job_id) if item is not None else None
            prior = await deps.items.step_runs(conn, item_id) if item is not None else []
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
            outcome = ItemOutcome(ITEM_FAILED, f"unknown recipe {job.recipe!r}", "UNKNOWN_RECIPE")
            await self._finish(ctx, job, item, outcome)
            return
        files = ItemFiles(
            deps.db,
            deps.assets,
            deps.downloader,
            client_id=job.client_id,
            job_id=job.id,
            item_id=item.id,
            max_bytes=deps.max_input_bytes,
            link_for=_link_maker(deps.asset_links),
            results=deps.results,
        )
        limit = recipe.time_limit(job.options)
        run = ItemExecution(
            deps,
            job,
            item,
            prior,
            files,
            stages=recipe.stages if len(recipe.stages) > 1 else (),
            started=item.status != ITEM_PENDING,
            # An item with a time limit waits for its provider in its own coroutine, where
            # the limit can stop it; the others park.
            can_park=deps.polls is not None and limit is None,
            news=ctx.note if isinstance(ctx.note, StepNews) else None,
            fence=ctx.fence,
            urgent=job.priority >= SYNC_PRIORITY_BOOST,
        )
        me = asyncio.current_task()
        stopped = False

        def stop() -> None:
            # The job was cancelled: stop fetching inputs now, closing their connections
            # (a step in a model call sees the cancel itself and cancels at the provider).
            nonlocal stopped
            if me is not None and not stopped and run.interruptible:
                stopped = True
                me.cancel()

        if item.status == ITEM_PENDING and item.runs > 0:
            # Reopened by a retry, which a cancel may have preceded: what this node
            # remembers of that cancel is stale (the item's writes check the rows anyway).
            deps.watch.reopened(job.id)
        deps.watch.track(job.id, stop)
        parked = False
        try:
            if limit is None:
                output = await recipe.run(run)
            else:
                # Each run of the item gets the whole limit: a resumed run repeats no
                # finished step, and the queue's backoff between runs is not work.
                output = await TimeBudget(deps.clock, limit).run(recipe.run(run))
        except asyncio.CancelledError:
            if not stopped or me is None:
                raise
            me.uncancel()
            await self._finish(ctx, job, item, ItemOutcome(ITEM_CANCELLED), run)
        except StepParked as step:
            assert deps.polls is not None
            # The item waits in the scheduler, which watches the job for cancels from now on.
            deps.polls.park(Waiting(ctx.task.id, job.id, step.step_run_id, step.adapter, step.wait))
            parked = True
            raise TaskParked() from None
        except Exception as exc:
            ended = item_outcome(exc)
            if ended is None:
                raise
            await self._finish(ctx, job, item, ended, run)
        else:
            await self._finish(ctx, job, item, ItemOutcome(ITEM_COMPLETED), run, output)
        finally:
            if parked:
                deps.watch.track(job.id)  # the scheduler's, until it resumes the item
            deps.watch.untrack(job.id, stop)

    async def _finish(
        self,
        ctx: TaskContext,
        job: JobRow,
        item: ItemRow,
        outcome: ItemOutcome,
        run: ItemExecution | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        if run is not None:
            output = dict(output or {})
            if run.warnings:
                output["warnings"] = run.warnings
            if run.provenance:
                output["provenance"] = run.provenance
        async with self.deps.db.write() as conn:
            # The job row (shared by every item of the job) is updated last, so the lock on
            # it is held for as short a time as possible.
            await ctx.complete(conn)
            closed = await self.deps.items.finish(
                conn,
                job,
                item,
                outcome.status,
                output=output or None,
                error=outcome.error,
                code=outcome.code,
                model_used=run.last_model if run else None,
                stages=run.stages if run else (),
            )
        if closed is not None:
            ITEMS_FINISHED.labels(job.recipe, outcome.status).inc()

    async def on_dead(self, conn: AsyncConnection, task: Task, error: str) -> None:
        """The task ran out of attempts: the item fails with the last error."""
        item = await self.deps.items.get_item(conn, str(task.payload.get("item_id")))
        job = await self.deps.items.get_job(conn, item.job_id) if item is not None else None
        if item is None or job is None:
            return
        recipe = self.deps.recipes.get(job.recipe)
        message = error.splitlines()[0] if error else "failed"
        closed = await self.deps.items.finish(
            conn,
            job,
            item,
            ITEM_FAILED,
            error=f"gave up after {task.attempts + 1} attempts: {message}",
            code="ATTEMPTS_EXHAUSTED",
            stages=recipe.stages if recipe is not None and len(recipe.stages) > 1 else (),
        )
        if closed is not None:
            ITEMS_FINISHED.labels(job.recipe, ITEM_FAILED).inc()


def _link_maker(links: AssetLinks | None) -> Callable[[Asset], Awaitable[str | None]] | None:
    if links is None:
        return None

    async def link_for(asset: Asset) -> str | None:
        return links.url(asset.id)

    return link_for
