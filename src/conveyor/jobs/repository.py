"""SQL for jobs, items and step runs. Functions take the caller's connection; the caller
owns the transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.jobs.models import (
    ITEM_CANCELLED,
    ITEM_COMPLETED,
    ITEM_FAILED,
    ITEM_OPEN,
    ITEM_PENDING,
    ITEM_RUNNING,
    JOB_ACTIVE,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_PROCESSING,
    MIXED_CURRENCIES,
    STEP_SUCCEEDED,
    ItemRow,
    JobRow,
    StepRunRow,
    items,
    jobs,
    step_runs,
)


def _row(cls: type[Any], row: Any) -> Any:
    return cls(**{name: getattr(row, name) for name in cls.__slots__})


def job_row(row: Any) -> JobRow:
    return _row(JobRow, row)  # type: ignore[no-any-return]


def item_row(row: Any) -> ItemRow:
    return _row(ItemRow, row)  # type: ignore[no-any-return]


async def insert_job(conn: AsyncConnection, job: JobRow) -> None:
    await conn.execute(insert(jobs).values({n: getattr(job, n) for n in JobRow.__slots__}))


async def insert_items(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(items), rows)


async def get_job(conn: AsyncConnection, job_id: str) -> JobRow | None:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return job_row(row) if row is not None else None


async def find_jobs_by_idempotency_keys(
    conn: AsyncConnection, client_id: str, keys: list[str]
) -> dict[str, JobRow]:
    rows = await conn.execute(
        select(jobs).where(jobs.c.client_id == client_id, jobs.c.idempotency_key.in_(keys))
    )
    return {row.idempotency_key: job_row(row) for row in rows}


async def find_job_by_idempotency_key(
    conn: AsyncConnection, client_id: str, key: str
) -> JobRow | None:
    row = (
        await conn.execute(
            select(jobs).where(jobs.c.client_id == client_id, jobs.c.idempotency_key == key)
        )
    ).first()
    return job_row(row) if row is not None else None


async def list_jobs(
    conn: AsyncConnection,
    *,
    client_id: str,
    status: str | None,
    limit: int,
    before: tuple[datetime, str] | None = None,
    offset: int = 0,
    source: str | None = None,
    stage: str | None = None,
    not_stage: str | None = None,
) -> list[JobRow]:
    """Newest first. ``before`` is a keyset cursor: (created_at, id) of the last row seen."""
    stmt = select(jobs).where(jobs.c.client_id == client_id)
    if status is not None:
        stmt = stmt.where(jobs.c.status == status)
    if stage is not None:
        stmt = stmt.where(jobs.c.stage == stage)
    if not_stage is not None:
        stmt = stmt.where(or_(jobs.c.stage.is_(None), jobs.c.stage != not_stage))
    if source is not None:
        stmt = stmt.where(jobs.c.source == source)
    if before is not None:
        created, job_id = before
        stmt = stmt.where(
            or_(jobs.c.created_at < created, and_(jobs.c.created_at == created, jobs.c.id < job_id))
        )
    stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
    return [job_row(r) for r in await conn.execute(stmt)]


async def list_items(
    conn: AsyncConnection,
    job_id: str,
    *,
    after_seq: int = -1,
    limit: int | None = None,
    status: str | None = None,
) -> list[ItemRow]:
    stmt = select(items).where(items.c.job_id == job_id, items.c.seq > after_seq)
    if status is not None:
        stmt = stmt.where(items.c.status == status)
    stmt = stmt.order_by(items.c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [item_row(r) for r in await conn.execute(stmt)]


async def items_finished_since(
    conn: AsyncConnection, job_id: str, since: datetime
) -> list[ItemRow]:
    stmt = (
        select(items)
        .where(items.c.job_id == job_id, items.c.finished_at >= since)
        .order_by(items.c.seq)
    )
    return [item_row(r) for r in await conn.execute(stmt)]


async def get_item(conn: AsyncConnection, item_id: str) -> ItemRow | None:
    row = (await conn.execute(select(items).where(items.c.id == item_id))).first()
    return item_row(row) if row is not None else None


async def item_is_open(conn: AsyncConnection, item_id: str) -> bool:
    status = await conn.scalar(select(items.c.status).where(items.c.id == item_id))
    return status in ITEM_OPEN


async def step_runs_of(conn: AsyncConnection, item_id: str) -> list[StepRunRow]:
    rows = await conn.execute(
        select(step_runs)
        .where(step_runs.c.item_id == item_id)
        .order_by(step_runs.c.started_at, step_runs.c.id)
    )
    return [_row(StepRunRow, r) for r in rows]


async def get_step_run(conn: AsyncConnection, step_run_id: str) -> StepRunRow | None:
    row = (await conn.execute(select(step_runs).where(step_runs.c.id == step_run_id))).first()
    return _row(StepRunRow, row) if row is not None else None


async def items_of_jobs(conn: AsyncConnection, job_ids: Sequence[str]) -> list[ItemRow]:
    if not job_ids:
        return []
    rows = await conn.execute(
        select(items).where(items.c.job_id.in_(job_ids)).order_by(items.c.job_id, items.c.seq)
    )
    return [item_row(r) for r in rows]


async def latest_task_ids(conn: AsyncConnection, item_ids: Sequence[str]) -> dict[str, str]:
    """The provider task id of each item's latest step run that has one."""
    if not item_ids:
        return {}
    rows = await conn.execute(
        select(step_runs.c.item_id, step_runs.c.external_task_id)
        .where(step_runs.c.item_id.in_(item_ids), step_runs.c.external_task_id.is_not(None))
        .order_by(step_runs.c.started_at, step_runs.c.id)
    )
    return {row.item_id: row.external_task_id for row in rows}


async def reusable_step_run(conn: AsyncConnection, reuse_key: str) -> StepRunRow | None:
    """The newest succeeded step run recorded under ``reuse_key`` (indexed), if any."""
    row = (
        await conn.execute(
            select(step_runs)
            .where(step_runs.c.reuse_key == reuse_key, step_runs.c.status == STEP_SUCCEEDED)
            .order_by(step_runs.c.finished_at.desc(), step_runs.c.id.desc())
            .limit(1)
        )
    ).first()
    return _row(StepRunRow, row) if row is not None else None


async def save_step_run(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert or update a step run row by id (one statement)."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(step_runs).values(values)
    changes = {k: v for k, v in values.items() if k != "id"}
    await conn.execute(stmt.on_conflict_do_update(index_elements=[step_runs.c.id], set_=changes))


async def start_item(
    conn: AsyncConnection, item: ItemRow, now: datetime, *, job_pending: bool = True
) -> bool:
    """pending → running; the job becomes ``processing`` with its first item. False if the
    item is no longer open (cancelled meanwhile). ``job_pending=False`` (the job was seen
    running already) skips touching the job row, which every item of the job shares."""
    result = await conn.execute(
        update(items)
        # Of this run: a retry that reopened the item meanwhile (after a cancel) started
        # another, and a run still winding down must not take it over.
        .where(items.c.id == item.id, items.c.status.in_(ITEM_OPEN), items.c.runs == item.runs)
        .values(
            status=ITEM_RUNNING, started_at=func.coalesce(items.c.started_at, now), updated_at=now
        )
    )
    if result.rowcount != 1:
        return False
    if not job_pending:
        return True
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == item.job_id, jobs.c.status == JOB_PENDING)
        .values(status=JOB_PROCESSING, started_at=now, updated_at=now)
    )
    return True


async def set_item_stage(
    conn: AsyncConnection, item: ItemRow, stage: str, stages: Sequence[str], now: datetime
) -> str | None:
    """Record the item's stage; returns the job's new stage if it moved because of it."""
    # Items change stage concurrently; locking the job row first makes each transaction see
    # the others' stages, so the last item to move on moves the job on (PostgreSQL; SQLite
    # writers are serialised anyway).
    await conn.execute(select(jobs.c.id).where(jobs.c.id == item.job_id).with_for_update())
    await conn.execute(
        update(items)
        .where(items.c.id == item.id, items.c.status.in_(ITEM_OPEN))
        .values(stage=stage, updated_at=now)
    )
    return await refresh_job_stage(conn, item.job_id, stages, now)


async def refresh_job_stage(
    conn: AsyncConnection, job_id: str, stages: Sequence[str], now: datetime
) -> str | None:
    """Set the job's stage to the earliest of ``stages`` any open item is in (an item that
    has not reported one is in the first); returns the new stage if it changed."""
    if not stages:
        return None
    order = case(
        *((items.c.stage == name, literal(index)) for index, name in enumerate(stages)),
        else_=literal(0),
    )
    earliest = await conn.scalar(
        select(func.min(order)).where(items.c.job_id == job_id, items.c.status.in_(ITEM_OPEN))
    )
    if earliest is None:
        return None
    stage = stages[int(earliest)]
    result = await conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.status.in_(JOB_ACTIVE),
            or_(jobs.c.stage.is_(None), jobs.c.stage != stage),
        )
        .values(stage=stage, updated_at=now)
    )
    return stage if result.rowcount == 1 else None


@dataclass(frozen=True, slots=True)
class Charge:
    """What an item was charged: ``cost`` in ``currency`` (None: nothing charged), and how
    many calls had no known price (its total is then unknown)."""

    cost: float = 0.0
    currency: str | None = None
    unpriced: int = 0


def _merged_currency(currency: str | None) -> Any:
    if currency is None:
        return jobs.c.cost_currency
    return case(
        (jobs.c.cost_currency.is_(None), literal(currency)),
        (jobs.c.cost_currency == currency, jobs.c.cost_currency),
        else_=literal(MIXED_CURRENCIES),
    )


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """The job after an item transition: ``finished_status`` is set when it was the last,
    ``stage`` when the job's stage moved on."""

    job: JobRow
    finished_status: str | None
    stage: str | None = None


async def finish_item(
    conn: AsyncConnection,
    item: ItemRow,
    *,
    status: str,
    now: datetime,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    error_code: str | None = None,
    model_used: str | None = None,
    charge: Charge = Charge(),
    stages: Sequence[str] = (),
) -> ItemOutcome | None:
    """Close an open item and count it on its job, atomically. None if it was not open, or
    was reopened by a retry since ``item`` was read (that run's end is the new run's to say).

    ``charge`` is everything the item was charged over all its runs: the job's totals move
    by its difference from what the item carried before (its last close)."""
    result = await conn.execute(
        update(items)
        .where(items.c.id == item.id, items.c.status.in_(ITEM_OPEN), items.c.runs == item.runs)
        .values(
            status=status,
            output=output,
            error=error,
            error_code=error_code,
            model_used=model_used,
            cost=charge.cost,
            cost_currency=charge.currency,
            unpriced_calls=charge.unpriced,
            started_at=func.coalesce(items.c.started_at, now),
            finished_at=now,
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        return None
    counter = {ITEM_COMPLETED: jobs.c.completed, ITEM_FAILED: jobs.c.failed}.get(
        status, jobs.c.cancelled
    )
    row = (
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == item.job_id)
            .values(
                {
                    counter.name: counter + 1,
                    "cost": jobs.c.cost + (charge.cost - item.cost),
                    "unpriced_calls": jobs.c.unpriced_calls
                    + (charge.unpriced - item.unpriced_calls),
                    "cost_currency": _merged_currency(charge.currency),
                    "updated_at": now,
                    # An item can finish before any step wrote (it failed at once).
                    "status": case(
                        (jobs.c.status == JOB_PENDING, JOB_PROCESSING), else_=jobs.c.status
                    ),
                    "started_at": func.coalesce(jobs.c.started_at, now),
                }
            )
            .returning(*jobs.c)
        )
    ).one()
    job = job_row(row)
    finished = await _finish_job_if_done(conn, job, now)
    stage = None
    if finished is None and len(stages) > 1:
        stage = await refresh_job_stage(conn, job.id, stages, now)
    if finished is not None:
        job = await get_job(conn, job.id) or job
    return ItemOutcome(job, finished, stage)


def final_status(completed: int, failed: int, cancelled: int) -> str:
    if completed == 0 and failed > 0:
        return JOB_FAILED
    if completed == 0 and failed == 0 and cancelled > 0:
        return JOB_CANCELLED
    return JOB_COMPLETED


async def _finish_job_if_done(conn: AsyncConnection, job: JobRow, now: datetime) -> str | None:
    if job.completed + job.failed + job.cancelled < job.total or job.status not in JOB_ACTIVE:
        return None
    status = final_status(job.completed, job.failed, job.cancelled)
    error = None
    if status == JOB_FAILED:
        error = f"all {job.failed} item(s) failed"
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.status.in_(JOB_ACTIVE))
        .values(status=status, stage=None, finished_at=now, updated_at=now, error_message=error)
    )
    return status if result.rowcount == 1 else None


async def cancel_job(conn: AsyncConnection, job: JobRow, now: datetime) -> bool:
    """Cancel every open item and the job; True if this call ended the job (False: it had
    ended already, e.g. its last item finished after the caller read it)."""
    result = await conn.execute(
        update(items)
        .where(items.c.job_id == job.id, items.c.status.in_(ITEM_OPEN))
        .values(status=ITEM_CANCELLED, finished_at=now, updated_at=now)
    )
    cancelled = int(result.rowcount)
    moved = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.status.in_(JOB_ACTIVE))
        .values(
            status=JOB_CANCELLED,
            stage=None,
            cancelled=jobs.c.cancelled + cancelled,
            finished_at=now,
            updated_at=now,
        )
    )
    return moved.rowcount == 1


async def reopen_failed_items(
    conn: AsyncConnection, job: JobRow, now: datetime, *, cancelled_too: bool = False
) -> list[ItemRow]:
    """Failed items (and cancelled ones, with ``cancelled_too``) back to pending (a new run
    each), and the job active again.

    Each status is reopened by one statement that picks and reopens its items: two retries
    at once reopen each item once, and the job's ``failed`` and ``cancelled`` counters drop
    by exactly the items this call reopened.
    """
    statuses = (ITEM_FAILED, ITEM_CANCELLED) if cancelled_too else (ITEM_FAILED,)
    reopened: list[ItemRow] = []
    counts: dict[str, Any] = {}
    for status in statuses:
        result = await conn.execute(
            update(items)
            .where(items.c.job_id == job.id, items.c.status == status)
            .values(
                status=ITEM_PENDING,
                error=None,
                error_code=None,
                runs=items.c.runs + 1,
                finished_at=None,
                updated_at=now,
            )
            .returning(*items.c)
        )
        rows = [item_row(r) for r in result]
        if rows:
            counter = jobs.c.failed if status == ITEM_FAILED else jobs.c.cancelled
            counts[counter.name] = counter - len(rows)
            reopened.extend(rows)
    if not reopened:
        return []
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id)
        .values(
            status=JOB_PROCESSING,
            finished_at=None,
            error_message=None,
            updated_at=now,
            **counts,
        )
    )
    return sorted(reopened, key=lambda item: item.seq)


async def reopen_completed_items(
    conn: AsyncConnection, job: JobRow, item_ids: Sequence[str], now: datetime
) -> list[ItemRow]:
    """Completed items of the job among ``item_ids`` back to pending (a new run each), and
    the job active again: a recipe whose completed item is missing part of its result (a
    word whose audio failed) re-runs it, reusing the steps that succeeded. As for failed
    items, one statement picks and reopens them, and ``completed`` drops by exactly those.
    """
    if not item_ids:
        return []
    result = await conn.execute(
        update(items)
        .where(
            items.c.job_id == job.id,
            items.c.status == ITEM_COMPLETED,
            items.c.id.in_(list(item_ids)),
        )
        .values(status=ITEM_PENDING, runs=items.c.runs + 1, finished_at=None, updated_at=now)
        .returning(*items.c)
    )
    reopened = sorted((item_row(r) for r in result), key=lambda item: item.seq)
    if not reopened:
        return []
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id)
        .values(
            status=JOB_PROCESSING,
            completed=jobs.c.completed - len(reopened),
            finished_at=None,
            error_message=None,
            updated_at=now,
        )
    )
    return reopened


async def settled_counts(conn: AsyncConnection, job_ids: Sequence[str]) -> dict[str, int]:
    """Items of each job that have ended at least once: ended now, or reopened by a retry.

    One statement, so the count is of one snapshot: it never goes back, even while a retry
    runs or items end concurrently (reading the job's counters and the reopened items in
    two statements could miss an item that ended in between)."""
    if not job_ids:
        return {}
    rows = await conn.execute(
        select(items.c.job_id, func.count())
        .where(
            items.c.job_id.in_(list(job_ids)),
            or_(items.c.status.not_in(ITEM_OPEN), items.c.runs > 0),
        )
        .group_by(items.c.job_id)
    )
    return {job_id: int(count) for job_id, count in rows}


async def delete_jobs(conn: AsyncConnection, job_ids: list[str]) -> None:
    """Delete jobs; their items and step runs go with them (ON DELETE CASCADE)."""
    await conn.execute(delete(jobs).where(jobs.c.id.in_(job_ids)))


async def cancelled_among(conn: AsyncConnection, job_ids: list[str]) -> set[str]:
    if not job_ids:
        return set()
    rows = await conn.scalars(
        select(jobs.c.id).where(jobs.c.id.in_(job_ids), jobs.c.status == JOB_CANCELLED)
    )
    return set(rows)


async def finished_job_ids_before(
    conn: AsyncConnection,
    cutoff: datetime,
    limit: int,
    *,
    sources: Collection[str] | None = None,
    other_than: Collection[str] = (),
) -> list[str]:
    """Jobs finished before ``cutoff``: of ``sources`` only (when given), none of
    ``other_than``."""
    stmt = select(jobs.c.id).where(jobs.c.finished_at.is_not(None), jobs.c.finished_at < cutoff)
    if sources is not None:
        stmt = stmt.where(jobs.c.source.in_(list(sources)))
    if other_than:
        stmt = stmt.where(jobs.c.source.not_in(list(other_than)))
    return list(await conn.scalars(stmt.limit(limit)))


async def error_reasons(
    conn: AsyncConnection, job_ids: Sequence[str]
) -> dict[str, list[tuple[str | None, str, int]]]:
    """Each job's failed items grouped by error: ``(code, message, count)``, most first."""
    if not job_ids:
        return {}
    rows = await conn.execute(
        select(items.c.job_id, items.c.error_code, items.c.error, func.count())
        .where(items.c.job_id.in_(list(job_ids)), items.c.status == ITEM_FAILED)
        .group_by(items.c.job_id, items.c.error_code, items.c.error)
    )
    found: dict[str, list[tuple[str | None, str, int]]] = {}
    for job_id, code, error, count in rows:
        found.setdefault(job_id, []).append((code, error or "failed", int(count)))
    for reasons in found.values():
        reasons.sort(key=lambda reason: (-reason[2], reason[1]))
    return found
