"""SQL for stored provider specs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.catalog.models import provider_specs


async def all_specs(conn: AsyncConnection) -> list[tuple[str, str]]:
    rows = await conn.execute(
        select(provider_specs.c.name, provider_specs.c.source).order_by(provider_specs.c.name)
    )
    return [(r.name, r.source) for r in rows]


async def get_spec(conn: AsyncConnection, name: str) -> str | None:
    source: str | None = await conn.scalar(
        select(provider_specs.c.source).where(provider_specs.c.name == name)
    )
    return source


async def fingerprint(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """Changes whenever a spec is added, replaced or removed."""
    row = (await conn.execute(select(func.count(), func.max(provider_specs.c.updated_at)))).one()
    return int(row[0]), row[1]


async def save_spec(conn: AsyncConnection, name: str, source: str, now: datetime) -> bool:
    """Insert or replace; True if it was new."""
    result = await conn.execute(
        update(provider_specs)
        .where(provider_specs.c.name == name)
        .values(source=source, updated_at=now)
    )
    if result.rowcount:
        return False
    await conn.execute(
        insert(provider_specs).values(name=name, source=source, created_at=now, updated_at=now)
    )
    return True


async def delete_spec(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(delete(provider_specs).where(provider_specs.c.name == name))
    return result.rowcount == 1
