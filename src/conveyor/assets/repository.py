"""SQL for asset rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.models import Asset, assets


def _asset(row: Any) -> Asset:
    return Asset(**{name: getattr(row, name) for name in Asset.__slots__})


async def insert_assets(conn: AsyncConnection, rows: list[Asset]) -> None:
    if rows:
        await conn.execute(
            insert(assets), [{n: getattr(a, n) for n in Asset.__slots__} for a in rows]
        )


async def get_asset(conn: AsyncConnection, asset_id: str) -> Asset | None:
    row = (await conn.execute(select(assets).where(assets.c.id == asset_id))).first()
    return _asset(row) if row is not None else None


async def get_assets(conn: AsyncConnection, asset_ids: list[str]) -> dict[str, Asset]:
    if not asset_ids:
        return {}
    rows = await conn.execute(select(assets).where(assets.c.id.in_(asset_ids)))
    return {row.id: _asset(row) for row in rows}


async def list_assets(
    conn: AsyncConnection,
    client_id: str,
    *,
    mime_prefix: str,
    limit: int,
    before: tuple[datetime, str] | None = None,
) -> list[Asset]:
    """The client's assets of one kind of content, newest first (``before``: keyset cursor)."""
    stmt = select(assets).where(
        assets.c.client_id == client_id, assets.c.mime_type.startswith(mime_prefix)
    )
    if before is not None:
        created, asset_id = before
        stmt = stmt.where(
            or_(
                assets.c.created_at < created,
                and_(assets.c.created_at == created, assets.c.id < asset_id),
            )
        )
    stmt = stmt.order_by(assets.c.created_at.desc(), assets.c.id.desc()).limit(limit)
    return [_asset(row) for row in await conn.execute(stmt)]


async def attach_to_item(conn: AsyncConnection, asset_id: str, job_id: str, item_id: str) -> None:
    """Make an unattached asset part of an item: it is then purged with the item's job."""
    await conn.execute(
        update(assets)
        .where(assets.c.id == asset_id, assets.c.job_id.is_(None))
        .values(job_id=job_id, item_id=item_id)
    )


async def storage_keys_in_use(conn: AsyncConnection, storage_keys: list[str]) -> set[str]:
    """Which of these keys some asset row still refers to."""
    found: set[str] = set()
    for start in range(0, len(storage_keys), 500):
        chunk = storage_keys[start : start + 500]
        rows = await conn.scalars(
            select(assets.c.storage_key).where(assets.c.storage_key.in_(chunk)).distinct()
        )
        found.update(rows)
    return found


async def delete_assets_of_jobs(conn: AsyncConnection, job_ids: list[str]) -> list[str]:
    """Delete the rows; returns their storage keys (the caller decides which bytes to drop)."""
    if not job_ids:
        return []
    keys = list(
        await conn.scalars(select(assets.c.storage_key).where(assets.c.job_id.in_(job_ids)))
    )
    await conn.execute(delete(assets).where(assets.c.job_id.in_(job_ids)))
    return keys


async def delete_assets(conn: AsyncConnection, asset_ids: list[str]) -> list[str]:
    """Delete these rows; returns their storage keys (the caller decides which bytes to drop)."""
    if not asset_ids:
        return []
    keys = list(await conn.scalars(select(assets.c.storage_key).where(assets.c.id.in_(asset_ids))))
    await conn.execute(delete(assets).where(assets.c.id.in_(asset_ids)))
    return keys
