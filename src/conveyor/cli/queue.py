"""The dead-letter side of the work queue."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from conveyor.cli.app import (
    console,
    fail,
    queue_app,
)
from conveyor.config import get_settings


@queue_app.command("dead")
def queue_dead(limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """Tasks that ran out of attempts, with their last error."""
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database
    from conveyor.queue import QueueRepository

    settings = get_settings()

    async def run() -> list[Any]:
        db = Database(settings.resolved_database_url, pool_size=1)
        try:
            async with db.read() as conn:
                repo = QueueRepository(db.dialect, SystemClock())
                return await repo.list_tasks(conn, status="dead", limit=limit)
        finally:
            await db.dispose()

    table = Table("id", "handler", "attempts", "payload", "last error")
    for task in asyncio.run(run()):
        error = (task.last_error or "").splitlines()[0][:80] if task.last_error else ""
        table.add_row(
            str(task.id), task.handler, str(task.attempts), json.dumps(task.payload), error
        )
    console.print(table)


@queue_app.command("requeue")
def queue_requeue(task_id: int) -> None:
    """Run a dead task again from scratch."""
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database
    from conveyor.queue import QueueRepository

    settings = get_settings()

    async def run() -> bool:
        db = Database(settings.resolved_database_url, pool_size=1)
        try:
            async with db.write() as conn:
                return await QueueRepository(db.dialect, SystemClock()).requeue(conn, task_id)
        finally:
            await db.dispose()

    if not asyncio.run(run()):
        raise fail(f"task {task_id} is not a dead task")
    console.print(f"task {task_id} queued again")
