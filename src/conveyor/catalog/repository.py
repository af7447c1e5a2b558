"""SQL for stored provider specs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.catalog.models import provider_specs


async def all_specs(conn: AsyncConnection) -> list[tuple[str, str]]:
    rows = await conn.execute(
        select(provider_specs.c.name, provider_specs.c.source).order_by(provider_specs.c.name)
    )
    return [(r.name, r.source) for r in rows]


async def get_spec(conn: AsyncConnection, name: str, *, lock: bool = False) -> str | None:
    """The stored source; ``lock`` holds the row until the transaction ends (PostgreSQL;
    SQLite has one writer at a time anyway), so a read-modify-write loses no update."""
    query = select(provider_specs.c.source).where(provider_specs.c.name == name)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    source: str | None = await conn.scalar(query)
    return source


async def fingerprint(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """Changes whenever a spec is added, replaced or removed."""
    row = (await conn.execute(select(func.count(), func.max(provider_specs.c.updated_at)))).one()
    return int(row[0]), row[1]


async def insert_spec(conn: AsyncConnection, name: str, source: str, now: datetime) -> bool:
    """Insert a new spec; False (and nothing written) if the name was taken meanwhile."""
    values = {"name": name, "source": source, "created_at": now, "updated_at": now}
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = await conn.execute(
        dialect_insert(provider_specs).values(**values).on_conflict_do_nothing()
    )
    return result.rowcount == 1


async def update_spec(conn: AsyncConnection, name: str, source: str, now: datetime) -> bool:
    result = await conn.execute(
        update(provider_specs)
        .where(provider_specs.c.name == name)
        .values(source=source, updated_at=now)
    )
    return result.rowcount == 1


async def delete_spec(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(delete(provider_specs).where(provider_specs.c.name == name))
    return result.rowcount == 1
