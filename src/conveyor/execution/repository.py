"""SQL of the execution side's own table: webhook delivery attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.execution.models import webhook_attempts


async def count_webhook_attempts(conn: AsyncConnection, job_id: str) -> int:
    return int(
        await conn.scalar(
            select(func.count())
            .select_from(webhook_attempts)
            .where(webhook_attempts.c.job_id == job_id)
        )
        or 0
    )


async def record_webhook_attempt(
    conn: AsyncConnection,
    *,
    job_id: str,
    url: str,
    event: str,
    attempt: int,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    now: datetime,
) -> None:
    await conn.execute(
        insert(webhook_attempts).values(
            job_id=job_id,
            url=url,
            event=event,
            attempt=attempt,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            created_at=now,
        )
    )
