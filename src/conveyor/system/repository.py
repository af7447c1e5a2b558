"""Read-only SQL over the queue's worker registrations, for operators.

The queue owns ``queue_workers``; it offers a count of live workers but not the rows, so the
operator view reads them here (one ``SELECT``, no writes). It belongs in
``QueueRepository`` next to ``live_workers`` once the queue grows an operator listing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.queue.models import queue_workers


@dataclass(frozen=True, slots=True)
class WorkerRow:
    id: str
    name: str
    concurrency: int
    in_flight: int
    started_at: float
    heartbeat_at: float


async def workers_seen_since(conn: AsyncConnection, moment: float) -> list[WorkerRow]:
    """Workers whose last heartbeat is at or after ``moment`` (database time, seconds)."""
    rows = await conn.execute(
        select(queue_workers)
        .where(queue_workers.c.heartbeat_at >= moment)
        .order_by(queue_workers.c.started_at)
    )
    return [
        WorkerRow(r.id, r.name, r.concurrency, r.in_flight, r.started_at, r.heartbeat_at)
        for r in rows
    ]
