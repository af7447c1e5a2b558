"""Item transitions: what the engine may change on an item, its step runs and its job.

Every method takes the caller's connection (the engine's task handler opens the transaction)
and changes the job together with the item in it: an item's start makes its job
``processing``; its stage moves the job's stage; its end counts it on the job, finishes the
job when it was the last, and announces its end (``ending.job_ended``: the event and the
webhook, queued in the same transaction, an outbox).
Events are published after the commit (``EventBus.emit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.core.clock import Clock
from conveyor.jobs import repository as repo
from conveyor.jobs.ending import job_ended
from conveyor.jobs.events import EventBus, JobEvent
from conveyor.jobs.models import MIXED_CURRENCIES, STEP_SUCCEEDED, ItemRow, JobRow, StepRunRow
from conveyor.jobs.schemas import REASONS_SHOWN, ErrorReason, progress_event
from conveyor.providers.base import DEFAULT_CURRENCY
from conveyor.queue import QueueRepository


def charge_of(runs: Sequence[StepRunRow]) -> repo.Charge:
    """What these step runs were charged: succeeded calls, each at its own price; a step
    that took an earlier step's output (``reused_from``) called nothing and costs nothing."""
    total = 0.0
    currencies: set[str] = set()
    unpriced = 0
    for run in runs:
        if run.status != STEP_SUCCEEDED or (run.output or {}).get("reused_from"):
            continue
        if run.cost is None:
            unpriced += 1
            continue
        total += run.cost
        if run.cost:
            currencies.add(str((run.output or {}).get("currency") or DEFAULT_CURRENCY))
    currency = None
    if len(currencies) == 1:
        currency = currencies.pop()
    elif currencies:
        currency = MIXED_CURRENCIES
    return repo.Charge(round(total, 6), currency, unpriced)


class ItemService:
    def __init__(self, clock: Clock, queue: QueueRepository, events: EventBus) -> None:
        self.clock = clock
        self.queue = queue
        self.events = events

    async def get_item(self, conn: AsyncConnection, item_id: str) -> ItemRow | None:
        return await repo.get_item(conn, item_id)

    async def get_job(self, conn: AsyncConnection, job_id: str) -> JobRow | None:
        return await repo.get_job(conn, job_id)

    async def error_reasons(
        self, conn: AsyncConnection, job: JobRow, *, limit: int = REASONS_SHOWN
    ) -> list[ErrorReason]:
        """The most common errors of the job's failed items (for its ``error_summary``)."""
        found = await repo.error_reasons(conn, [job.id]) if job.failed else {}
        return [ErrorReason(code=c, message=m, count=n) for c, m, n in found.get(job.id, [])][
            :limit
        ]

    async def step_runs(self, conn: AsyncConnection, item_id: str) -> list[StepRunRow]:
        """The item's step runs, oldest first (the history a resumed item replays)."""
        return await repo.step_runs_of(conn, item_id)

    async def get_step_run(self, conn: AsyncConnection, step_run_id: str) -> StepRunRow | None:
        return await repo.get_step_run(conn, step_run_id)

    async def reusable_step_run(self, conn: AsyncConnection, reuse_key: str) -> StepRunRow | None:
        """The newest succeeded step run recorded under ``reuse_key`` (see ``steps``)."""
        return await repo.reusable_step_run(conn, reuse_key)

    async def is_open(self, conn: AsyncConnection, item_id: str) -> bool:
        """Whether the item still waits for its result (not completed, failed or cancelled)."""
        return await repo.item_is_open(conn, item_id)

    async def cancelled_among(self, conn: AsyncConnection, job_ids: list[str]) -> set[str]:
        """Which of these jobs were cancelled (steps running for them should stop)."""
        return await repo.cancelled_among(conn, job_ids)

    async def start(self, conn: AsyncConnection, item: ItemRow, *, job_pending: bool) -> bool:
        """pending → running (and the job ``processing``); False if no longer open.

        ``job_pending=False`` (the job was seen running already) leaves the job row alone:
        every item of the job shares it."""
        return await repo.start_item(conn, item, self.clock.now(), job_pending=job_pending)

    async def save_step_run(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        """Insert or update a step run by its id."""
        await repo.save_step_run(conn, values)

    async def set_stage(
        self, conn: AsyncConnection, item: ItemRow, stage: str, stages: Sequence[str]
    ) -> None:
        """The item entered ``stage`` of its recipe's ``stages``; the job may move on."""
        moved = await repo.set_item_stage(conn, item, stage, stages, self.clock.now())
        if moved is not None:
            await self.events.emit(conn, JobEvent(item.job_id, "job.stage", {"stage": moved}))

    async def finish(
        self,
        conn: AsyncConnection,
        job: JobRow,
        item: ItemRow,
        status: str,
        *,
        output: dict[str, Any] | None = None,
        error: str | None = None,
        code: str | None = None,
        model_used: str | None = None,
        stages: Sequence[str] = (),
    ) -> repo.ItemOutcome | None:
        """Close the item and count it on its job; None if it was closed already.

        Its cost is read from its step runs, every run of it: a step paid for in a run that
        ended in a retry counts as much as one paid for now."""
        charge = charge_of(await repo.step_runs_of(conn, item.id))
        outcome = await repo.finish_item(
            conn,
            item,
            status=status,
            now=self.clock.now(),
            output=output,
            error=error,
            error_code=code,
            model_used=model_used,
            charge=charge,
            stages=stages,
        )
        if outcome is None:
            return None
        updated = outcome.job
        await self.events.emit(
            conn,
            JobEvent(
                job.id,
                f"item.{status}",
                {"item_id": item.id, "key": item.key, "seq": item.seq, "error": error},
            ),
        )
        await self.events.emit(conn, JobEvent(job.id, "job.progress", progress_event(updated)))
        if outcome.stage is not None:
            await self.events.emit(conn, JobEvent(job.id, "job.stage", {"stage": outcome.stage}))
        if outcome.finished_status is not None:
            # This transaction moved the job to its end (the guarded update changed the row).
            await job_ended(conn, self.events, self.queue, updated, outcome.finished_status)
        return outcome
