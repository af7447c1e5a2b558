"""The queue handlers of the jobs domain."""

from __future__ import annotations

from conveyor.jobs.engine import RUN_ITEM, ItemHandler
from conveyor.jobs.steps import EngineDeps
from conveyor.jobs.webhooks import WEBHOOK_HANDLER, WebhookSender
from conveyor.queue import TaskRegistry


def register_job_tasks(
    registry: TaskRegistry, deps: EngineDeps, webhooks: WebhookSender, *, item_timeout: float
) -> None:
    items = ItemHandler(deps)
    registry.register(RUN_ITEM, items, on_dead=items.on_dead, timeout=item_timeout)
    registry.register(WEBHOOK_HANDLER, webhooks, timeout=60)
