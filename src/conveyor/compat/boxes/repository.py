"""SQL for boxes and box assets. Functions take the caller's connection; the caller owns the
transaction. Lists are newest first, paged by ``limit``/``offset``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.compat.boxes.models import (
    COMPLETED,
    FAILED,
    BoxAssetRow,
    BoxRow,
    box_assets,
    boxes,
)


def _box(row: Any) -> BoxRow:
    return BoxRow(**{name: getattr(row, name) for name in BoxRow.__slots__})


def _asset(row: Any) -> BoxAssetRow:
    return BoxAssetRow(**{name: getattr(row, name) for name in BoxAssetRow.__slots__})


async def insert_box(conn: AsyncConnection, box: BoxRow) -> None:
    await conn.execute(insert(boxes).values({n: getattr(box, n) for n in BoxRow.__slots__}))


async def get_box(conn: AsyncConnection, box_id: str) -> BoxRow | None:
    row = (await conn.execute(select(boxes).where(boxes.c.id == box_id))).first()
    return _box(row) if row is not None else None


async def list_boxes(
    conn: AsyncConnection, client_id: str, *, limit: int, offset: int
) -> list[BoxRow]:
    rows = await conn.execute(
        select(boxes)
        .where(boxes.c.client_id == client_id)
        .order_by(boxes.c.created_at.desc(), boxes.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_box(row) for row in rows]


async def rename_box(conn: AsyncConnection, box_id: str, name: str, now: datetime) -> None:
    await conn.execute(update(boxes).where(boxes.c.id == box_id).values(name=name, updated_at=now))


async def delete_box(conn: AsyncConnection, box_id: str) -> None:
    """The box and (by cascade) its asset rows."""
    await conn.execute(delete(boxes).where(boxes.c.id == box_id))


async def insert_asset(conn: AsyncConnection, asset: BoxAssetRow) -> None:
    await conn.execute(
        insert(box_assets).values({n: getattr(asset, n) for n in BoxAssetRow.__slots__})
    )


async def get_asset(conn: AsyncConnection, asset_id: str) -> BoxAssetRow | None:
    row = (await conn.execute(select(box_assets).where(box_assets.c.id == asset_id))).first()
    return _asset(row) if row is not None else None


async def list_assets(
    conn: AsyncConnection, box_id: str, *, limit: int | None = None, offset: int = 0
) -> list[BoxAssetRow]:
    query = (
        select(box_assets)
        .where(box_assets.c.box_id == box_id)
        .order_by(box_assets.c.created_at.desc(), box_assets.c.id.desc())
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return [_asset(row) for row in await conn.execute(query)]


async def unsettled_generations(
    conn: AsyncConnection, *, after: tuple[datetime, str] | None, limit: int
) -> list[BoxAssetRow]:
    """Generations whose job may have finished since they were last settled, oldest first:
    never settled, or settled FAILED (a retried job can still complete)."""
    query = select(box_assets).where(
        box_assets.c.job_id.is_not(None),
        or_(box_assets.c.settled_status.is_(None), box_assets.c.settled_status == FAILED),
    )
    if after is not None:
        moment, asset_id = after
        query = query.where(
            or_(
                box_assets.c.created_at > moment,
                (box_assets.c.created_at == moment) & (box_assets.c.id > asset_id),
            )
        )
    rows = await conn.execute(query.order_by(box_assets.c.created_at, box_assets.c.id).limit(limit))
    return [_asset(row) for row in rows]


async def settle(
    conn: AsyncConnection,
    asset_id: str,
    *,
    status: str,
    error_message: str | None,
    external_task_id: str | None,
    file_asset_id: str | None,
    updated_at: datetime,
) -> bool:
    """Keep what a finished job said; a COMPLETED asset is never settled again."""
    result = await conn.execute(
        update(box_assets)
        .where(
            box_assets.c.id == asset_id,
            or_(box_assets.c.settled_status.is_(None), box_assets.c.settled_status != COMPLETED),
        )
        .values(
            settled_status=status,
            error_message=error_message,
            external_task_id=external_task_id,
            file_asset_id=file_asset_id,
            updated_at=updated_at,
        )
    )
    return result.rowcount == 1


async def file_asset_ids(conn: AsyncConnection, box_id: str) -> list[str]:
    rows = await conn.scalars(
        select(box_assets.c.file_asset_id).where(
            box_assets.c.box_id == box_id, box_assets.c.file_asset_id.is_not(None)
        )
    )
    return [str(value) for value in rows]


async def job_ids(conn: AsyncConnection, box_id: str) -> list[str]:
    rows = await conn.scalars(
        select(box_assets.c.job_id).where(
            box_assets.c.box_id == box_id, box_assets.c.job_id.is_not(None)
        )
    )
    return [str(value) for value in rows]


async def count_assets(conn: AsyncConnection, box_ids: Sequence[str]) -> dict[str, int]:
    if not box_ids:
        return {}
    rows = await conn.execute(
        select(box_assets.c.box_id, func.count())
        .where(box_assets.c.box_id.in_(box_ids))
        .group_by(box_assets.c.box_id)
    )
    return {row[0]: int(row[1]) for row in rows}
