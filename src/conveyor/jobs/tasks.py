"""The queue tasks the jobs domain asks for, and which rows they refer to.

The jobs domain only enqueues them (in the transaction that writes the rows they refer to);
``conveyor.execution`` registers the handlers that run them.
"""

from __future__ import annotations

from conveyor.queue import NewTask

RUN_ITEM = "jobs.run_item"
DELIVER_WEBHOOK = "jobs.deliver_webhook"
WEBHOOK_MAX_ATTEMPTS = 8


def run_item_tasks(
    job_id: str, client_id: str, item_ids: list[str], priority: int
) -> list[NewTask]:
    """One task per item; the job id groups them so a cancel drops them at once, the client
    id shares workers fairly between clients."""
    return [
        NewTask(
            RUN_ITEM,
            {"item_id": item_id},
            priority=priority,
            group_key=job_id,
            fair_key=client_id,
        )
        for item_id in item_ids
    ]


def webhook_task(job_id: str, event: str, delivery_id: str) -> NewTask:
    """``delivery_id`` names the one announcement: every attempt (and a re-run after a worker
    died mid-POST) sends the same id, so a receiver can drop what it already took."""
    return NewTask(
        DELIVER_WEBHOOK,
        {"job_id": job_id, "event": event, "delivery_id": delivery_id},
        max_attempts=WEBHOOK_MAX_ATTEMPTS,
    )
