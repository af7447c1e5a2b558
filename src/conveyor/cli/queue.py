"""The dead-letter side of the work queue."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from conveyor.cli.app import (
    console,
    fail,
    print_table,
    queue_app,
    with_admin_database,
)
from conveyor.config import get_settings


@queue_app.command("dead")
def queue_dead(limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """Tasks that ran out of attempts, with their last error."""
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database
    from conveyor.queue import QueueRepository

    async def dead(db: Database) -> list[Any]:
        async with db.read() as conn:
            repo = QueueRepository(db.dialect, SystemClock())
            return await repo.list_tasks(conn, status="dead", limit=limit)

    rows = []
    for task in with_admin_database(get_settings(), dead):
        error = (task.last_error or "").splitlines()[0][:80] if task.last_error else ""
        rows.append((task.id, task.handler, task.attempts, json.dumps(task.payload), error))
    print_table(("id", "handler", "attempts", "payload", "last error"), rows)


@queue_app.command("requeue")
def queue_requeue(task_id: int) -> None:
    """Run a dead task again from scratch."""
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database
    from conveyor.queue import QueueRepository

    async def requeue(db: Database) -> bool:
        async with db.write() as conn:
            return await QueueRepository(db.dialect, SystemClock()).requeue(conn, task_id)

    if not with_admin_database(get_settings(), requeue):
        raise fail(f"task {task_id} is not a dead task")
    console.print(f"task {task_id} queued again")
