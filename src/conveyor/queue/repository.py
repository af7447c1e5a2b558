"""SQL of the work queue: enqueue, claim, finish, retry, release, heartbeat, sweep.

The lease protocol. A worker claims due tasks in one statement (priority, then age), marking
them ``running`` with its ``worker_id`` and bumping ``claims``. It keeps a row in
``queue_workers`` fresh with one heartbeat write, however many tasks it holds. Tasks held by
a worker whose heartbeat is older than ``stale_after`` are claimable again (the claim takes
them directly; the sweeper also requeues them). Every later write of a task is fenced on the
``claims`` value the worker saw: if another worker has claimed it since, the write matches
no row and the first worker learns it lost the task (``LostTask``).

All methods take the caller's connection: enqueueing happens inside the caller's
transaction, so a task never refers to rows that were rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from conveyor.core.clock import Clock
from conveyor.core.db import after_commit, tx_state
from conveyor.queue.errors import LostTask
from conveyor.queue.models import (
    TASK_DEAD,
    TASK_QUEUED,
    TASK_RUNNING,
    NewTask,
    Task,
    TaskRow,
    queue_leases,
    queue_tasks,
    queue_workers,
)

NOTIFY_CHANNEL = "conveyor_queue"
_NOTIFY_PENDING = "queue_notify"
_WAKEUP_PENDING = "queue_wakeup"
_ERROR_LIMIT = 4000


def _task(row: Any) -> Task:
    return Task(
        id=row.id,
        handler=row.handler,
        payload=row.payload,
        priority=row.priority,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        claims=row.claims,
        worker_id=row.worker_id,
        group_key=row.group_key,
        last_error=row.last_error,
        fair_key=row.fair_key,
    )


class QueueRepository:
    def __init__(
        self,
        dialect: str,
        clock: Clock,
        *,
        default_max_attempts: int = 5,
        wakeup: Callable[[], None] | None = None,
    ) -> None:
        self.dialect = dialect
        self.clock = clock
        self.default_max_attempts = default_max_attempts
        self._wakeup = wakeup

    def _now(self) -> ColumnElement[float]:
        return self.clock.sql_now(self.dialect)

    async def db_now(self, conn: AsyncConnection) -> float:
        return float(await conn.scalar(select(self._now())) or 0.0)

    # -- producing ---------------------------------------------------------------------

    async def enqueue(self, conn: AsyncConnection, tasks: Sequence[NewTask]) -> None:
        """Insert tasks in the caller's transaction; workers are woken after commit."""
        if not tasks:
            return
        now = await self.db_now(conn)
        rows = [
            {
                "handler": t.handler,
                "payload": t.payload,
                "priority": t.priority,
                "status": TASK_QUEUED,
                "run_after": now + max(0.0, t.delay),
                "attempts": 0,
                "max_attempts": t.max_attempts or self.default_max_attempts,
                "claims": 0,
                "group_key": t.group_key,
                "fair_key": t.fair_key,
                "created_at": now,
            }
            for t in tasks
        ]
        await conn.execute(insert(queue_tasks), rows)
        await self._notify(conn)

    async def _notify(self, conn: AsyncConnection) -> None:
        state = tx_state(conn)
        if self._wakeup is not None and not state.get(_WAKEUP_PENDING):
            state[_WAKEUP_PENDING] = True
            after_commit(conn, self._wakeup)
        # One NOTIFY per transaction, however many tasks it enqueued: a pending NOTIFY takes
        # a global lock at commit, so keep them rare.
        if self.dialect == "postgresql" and not state.get(_NOTIFY_PENDING):
            state[_NOTIFY_PENDING] = True
            await conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))

    # -- claiming ----------------------------------------------------------------------

    async def claim(
        self,
        conn: AsyncConnection,
        worker_id: str,
        limit: int,
        *,
        stale_after: float,
        exclude_fair_keys: Collection[str] = (),
    ) -> list[Task]:
        """Claim up to ``limit`` tasks: first any held by dead workers, then due ones (but
        none whose ``fair_key`` is in ``exclude_fair_keys``)."""
        if limit <= 0:
            return []
        now = self._now()
        claimed: list[Task] = []
        stale_workers = select(queue_workers.c.id).where(
            queue_workers.c.heartbeat_at < now - stale_after, queue_workers.c.id != worker_id
        )
        # Checked first (a cheap probe of a small table) so the common case, nobody dead,
        # claims with the plain due-task query and its index.
        if await conn.scalar(select(stale_workers.exists())):
            claimed += await self._claim_where(
                conn,
                worker_id,
                limit,
                (queue_tasks.c.status == TASK_RUNNING) & queue_tasks.c.worker_id.in_(stale_workers),
                # The worker died while running it: that counts as a failed attempt.
                count_attempt=True,
            )
        if len(claimed) < limit:
            due = (queue_tasks.c.status == TASK_QUEUED) & (queue_tasks.c.run_after <= now)
            if exclude_fair_keys:
                due &= queue_tasks.c.fair_key.is_(None) | queue_tasks.c.fair_key.not_in(
                    sorted(exclude_fair_keys)
                )
            claimed += await self._claim_where(
                conn, worker_id, limit - len(claimed), due, count_attempt=False
            )
        return claimed

    async def _claim_where(
        self,
        conn: AsyncConnection,
        worker_id: str,
        limit: int,
        condition: ColumnElement[bool],
        *,
        count_attempt: bool,
    ) -> list[Task]:
        candidates = (
            select(queue_tasks.c.id)
            .where(condition)
            .order_by(queue_tasks.c.priority.desc(), queue_tasks.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("candidates")
            .prefix_with("MATERIALIZED")
        )
        values: dict[str, Any] = {
            "status": TASK_RUNNING,
            "worker_id": worker_id,
            "claims": queue_tasks.c.claims + 1,
            "claimed_at": self._now(),
        }
        if count_attempt:
            values["attempts"] = queue_tasks.c.attempts + 1
        stmt = (
            update(queue_tasks)
            .where(queue_tasks.c.id.in_(select(candidates.c.id)))
            .values(values)
            .returning(*queue_tasks.c)
        )
        result = await conn.execute(stmt)
        tasks = [_task(row) for row in result]
        tasks.sort(key=lambda t: (-t.priority, t.id))
        return tasks

    # -- finishing (all fenced on the claim) -------------------------------------------

    def _fence(self, task: Task) -> ColumnElement[bool]:
        return (
            (queue_tasks.c.id == task.id)
            & (queue_tasks.c.claims == task.claims)
            & (queue_tasks.c.status == TASK_RUNNING)
        )

    async def assert_owned(self, conn: AsyncConnection, task: Task) -> None:
        """Raise ``LostTask`` unless ``task`` is still this claim's; on PostgreSQL the row
        stays locked until the caller's transaction ends, so no claim can take it meanwhile."""
        stmt = select(queue_tasks.c.id).where(self._fence(task))
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        if await conn.scalar(stmt) is None:
            raise LostTask(f"task {task.id} was reclaimed by another worker")

    async def complete(self, conn: AsyncConnection, task: Task) -> None:
        """Remove a finished task. Raises ``LostTask`` if another worker owns it now."""
        result = await conn.execute(delete(queue_tasks).where(self._fence(task)))
        if result.rowcount != 1:
            raise LostTask(f"task {task.id} was reclaimed by another worker")

    async def retry(self, conn: AsyncConnection, task: Task, *, delay: float, error: str) -> None:
        await self._fenced_update(
            conn,
            task,
            status=TASK_QUEUED,
            attempts=queue_tasks.c.attempts + 1,
            run_after=self._now() + max(0.0, delay),
            worker_id=None,
            last_error=error[:_ERROR_LIMIT],
        )
        await self._notify(conn)

    async def bury(self, conn: AsyncConnection, task: Task, *, error: str) -> None:
        """Mark a task dead: kept with its error, visible and re-runnable."""
        await self._fenced_update(
            conn,
            task,
            status=TASK_DEAD,
            attempts=queue_tasks.c.attempts + 1,
            worker_id=None,
            last_error=error[:_ERROR_LIMIT],
            finished_at=self._now(),
        )

    async def release(self, conn: AsyncConnection, task: Task, *, delay: float = 0.0) -> None:
        """Give a task back without counting an attempt (shutdown, or a deliberate snooze)."""
        await self._fenced_update(
            conn,
            task,
            status=TASK_QUEUED,
            worker_id=None,
            run_after=self._now() + max(0.0, delay),
        )
        await self._notify(conn)

    async def _fenced_update(self, conn: AsyncConnection, task: Task, **values: Any) -> None:
        result = await conn.execute(update(queue_tasks).where(self._fence(task)).values(values))
        if result.rowcount != 1:
            raise LostTask(f"task {task.id} was reclaimed by another worker")

    # -- workers -----------------------------------------------------------------------

    async def register_worker(
        self, conn: AsyncConnection, worker_id: str, *, name: str, concurrency: int
    ) -> None:
        now = self._now()
        await conn.execute(delete(queue_workers).where(queue_workers.c.id == worker_id))
        await conn.execute(
            insert(queue_workers).values(
                id=worker_id,
                name=name,
                concurrency=concurrency,
                started_at=now,
                heartbeat_at=now,
                in_flight=0,
            )
        )

    async def heartbeat(self, conn: AsyncConnection, worker_id: str, *, in_flight: int) -> bool:
        """Refresh the heartbeat; False if the row is gone (the sweeper gave us up for dead)."""
        result = await conn.execute(
            update(queue_workers)
            .where(queue_workers.c.id == worker_id)
            .values(heartbeat_at=self._now(), in_flight=in_flight)
        )
        return result.rowcount == 1

    async def deregister_worker(self, conn: AsyncConnection, worker_id: str) -> None:
        await conn.execute(delete(queue_workers).where(queue_workers.c.id == worker_id))

    async def sweep(self, conn: AsyncConnection, *, stale_after: float, sweeper: str) -> int:
        """Requeue tasks of dead or vanished workers, then forget the dead workers.

        ``sweeper`` is the worker doing it: alive by definition, whatever its row says.
        """
        now = self._now()
        live = select(queue_workers.c.id).where(
            (queue_workers.c.heartbeat_at >= now - stale_after) | (queue_workers.c.id == sweeper)
        )
        result = await conn.execute(
            update(queue_tasks)
            .where(
                (queue_tasks.c.status == TASK_RUNNING)
                & ((queue_tasks.c.worker_id.is_(None)) | queue_tasks.c.worker_id.not_in(live))
            )
            .values(
                status=TASK_QUEUED,
                worker_id=None,
                attempts=queue_tasks.c.attempts + 1,
                run_after=now,
                last_error="worker stopped heartbeating while running this task",
            )
        )
        await conn.execute(
            delete(queue_workers).where(
                queue_workers.c.heartbeat_at < now - stale_after, queue_workers.c.id != sweeper
            )
        )
        if result.rowcount:
            await self._notify(conn)
        return int(result.rowcount)

    async def try_lease(self, conn: AsyncConnection, name: str, holder: str, *, ttl: float) -> bool:
        """Take or extend the named lease; True if ``holder`` has it now."""
        now = self._now()
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        insert_lease = dialect_insert(queue_leases).values(
            name=name, holder=holder, expires_at=now + ttl
        )
        upsert = insert_lease.on_conflict_do_update(
            index_elements=[queue_leases.c.name],
            set_={
                "holder": insert_lease.excluded.holder,
                "expires_at": insert_lease.excluded.expires_at,
            },
            where=(queue_leases.c.expires_at < now) | (queue_leases.c.holder == holder),
        ).returning(queue_leases.c.holder)
        return bool((await conn.scalar(upsert)) == holder)

    # -- operators ---------------------------------------------------------------------

    async def cancel_group(self, conn: AsyncConnection, group_key: str) -> int:
        """Drop the group's tasks that no worker holds yet; running ones must notice."""
        result = await conn.execute(
            delete(queue_tasks).where(
                (queue_tasks.c.group_key == group_key) & (queue_tasks.c.status == TASK_QUEUED)
            )
        )
        return int(result.rowcount)

    async def requeue(self, conn: AsyncConnection, task_id: int) -> bool:
        """Run a dead task again from scratch."""
        result = await conn.execute(
            update(queue_tasks)
            .where((queue_tasks.c.id == task_id) & (queue_tasks.c.status == TASK_DEAD))
            .values(
                status=TASK_QUEUED,
                attempts=0,
                worker_id=None,
                run_after=self._now(),
                finished_at=None,
            )
        )
        if result.rowcount:
            await self._notify(conn)
        return result.rowcount == 1

    async def list_tasks(
        self, conn: AsyncConnection, *, status: str | None = None, limit: int = 100
    ) -> list[TaskRow]:
        stmt = select(queue_tasks).order_by(queue_tasks.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(queue_tasks.c.status == status)
        rows = await conn.execute(stmt)
        return [
            TaskRow(
                id=r.id,
                handler=r.handler,
                status=r.status,
                attempts=r.attempts,
                max_attempts=r.max_attempts,
                group_key=r.group_key,
                last_error=r.last_error,
                payload=r.payload,
            )
            for r in rows
        ]

    async def counts(self, conn: AsyncConnection) -> dict[str, int]:
        rows = await conn.execute(
            select(queue_tasks.c.status, func.count()).group_by(queue_tasks.c.status)
        )
        counts = {TASK_QUEUED: 0, TASK_RUNNING: 0, TASK_DEAD: 0}
        counts.update({status: int(n) for status, n in rows})
        return counts

    async def live_workers(self, conn: AsyncConnection, *, stale_after: float) -> int:
        now = self._now()
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(queue_workers)
                .where(queue_workers.c.heartbeat_at >= now - stale_after)
            )
            or 0
        )


__all__ = ["NOTIFY_CHANNEL", "QueueRepository"]
