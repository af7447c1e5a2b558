"""What operators see of the work queue: depth, live workers, dead tasks, and requeueing.

The queue knows no domain, so this service only reads and nudges it through
``QueueRepository`` with the caller's connection; the console's Workers page and the CLI's
``queue`` commands ask the same questions.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.queue import QueueRepository
from conveyor.queue.models import TASK_DEAD, TaskRow
from conveyor.system import repository
from conveyor.system.repository import WorkerRow


@dataclass(frozen=True, slots=True)
class QueueOverview:
    """Tasks by status, the workers whose heartbeat is fresh, the database's time now."""

    counts: dict[str, int]
    workers: list[WorkerRow]
    now: float


class OperatorService:
    def __init__(self, queue: QueueRepository, *, stale_after: float) -> None:
        self.queue = queue
        self.stale_after = stale_after

    async def overview(self, conn: AsyncConnection) -> QueueOverview:
        now = await self.queue.db_now(conn)
        return QueueOverview(
            counts=await self.queue.counts(conn),
            workers=await repository.workers_seen_since(conn, now - self.stale_after),
            now=now,
        )

    async def dead_tasks(self, conn: AsyncConnection, *, limit: int = 100) -> list[TaskRow]:
        """Tasks that ran out of attempts, newest first, with their last error."""
        return await self.queue.list_tasks(conn, status=TASK_DEAD, limit=limit)

    async def requeue(self, conn: AsyncConnection, task_id: int) -> bool:
        """Run a dead task again from scratch; False if it is not a dead task."""
        return await self.queue.requeue(conn, task_id)
