"""The queue handlers of the execution side, registered under the jobs domain's task names."""

from __future__ import annotations

from conveyor.execution.engine import EngineDeps
from conveyor.execution.handler import ItemHandler
from conveyor.execution.webhooks import WebhookSender
from conveyor.jobs.tasks import DELIVER_WEBHOOK, RUN_ITEM
from conveyor.queue import TaskRegistry

WEBHOOK_TIMEOUT = 60.0


def register_execution_tasks(
    registry: TaskRegistry, deps: EngineDeps, webhooks: WebhookSender, *, item_timeout: float
) -> None:
    items = ItemHandler(deps)
    registry.register(RUN_ITEM, items, on_dead=items.on_dead, timeout=item_timeout)
    registry.register(DELIVER_WEBHOOK, webhooks, timeout=WEBHOOK_TIMEOUT)
