"""A job reached a terminal state: the one place that says so.

Whichever path ends a job — its last item finishing (``ItemService.finish``) or a cancel
(``JobService.cancel``) — calls ``job_ended`` in the transaction whose guarded ``UPDATE jobs
… WHERE status IN (pending, processing)`` moved it, and only when that statement changed the
row. So each terminal transition is announced exactly once: the ``job.finished`` event and,
when the job has a ``webhook_url``, its webhook task, queued in that same transaction (an
outbox: the job can't end without its webhook being due, nor the webhook go out for an end a
rollback undid). A cancel racing the last item's finish moves the row in one transaction
only; the other sees the job already ended and announces nothing.

Delivery is at least once (a worker that dies after the POST but before recording it runs
the task again): each announcement carries a ``delivery_id`` of its own, sent as
``X-Conveyor-Delivery`` on every attempt, so a receiver can drop a repeat. A retry reopens a
job (it is active again); when it ends again, that is a new transition with a new delivery
id and its own webhook, which carries the new final status.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.core.ids import new_id
from conveyor.jobs.events import EventBus, JobEvent
from conveyor.jobs.models import JobRow
from conveyor.jobs.tasks import webhook_task
from conveyor.queue import QueueRepository

JOB_FINISHED_EVENT = "job.finished"


async def job_ended(
    conn: AsyncConnection, events: EventBus, queue: QueueRepository, job: JobRow, status: str
) -> None:
    """Announce that ``job`` has just ended with ``status`` in the caller's transaction."""
    await events.emit(conn, JobEvent(job.id, JOB_FINISHED_EVENT, {"status": status}))
    if job.webhook_url:
        await queue.enqueue(conn, [webhook_task(job.id, JOB_FINISHED_EVENT, new_id())])
