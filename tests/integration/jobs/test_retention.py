"""Retention on both databases: expired jobs go with their items, step runs and asset rows;
their bytes go too, unless a newer asset still uses them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from conveyor.assets.models import Asset
from conveyor.assets.service import AssetService
from conveyor.clients.service import LOCAL_CLIENT, ClientService
from conveyor.core.clock import ManualClock
from conveyor.core.db import Database
from conveyor.jobs.models import items, jobs
from conveyor.jobs.retention import RetentionSweeper
from conveyor.queue import QueueRepository
from conveyor.storage import LocalStorage


async def _job(
    db: Database, clock: ManualClock, job_id: str, *, finished: bool, source: str = "v1"
) -> None:
    now = clock.now()
    async with db.write() as conn:
        await conn.execute(
            jobs.insert().values(
                id=job_id,
                client_id=LOCAL_CLIENT.id,
                recipe="model",
                status="completed" if finished else "processing",
                options={},
                total=1,
                source=source,
                created_at=now,
                updated_at=now,
                finished_at=now if finished else None,
            )
        )
        await conn.execute(
            items.insert().values(
                id=f"{job_id}-item",
                job_id=job_id,
                seq=0,
                status="completed" if finished else "running",
                input={},
                created_at=now,
                updated_at=now,
            )
        )


async def test_expired_jobs_take_their_files_unless_something_newer_uses_them(
    db: Database, tmp_path: Path
) -> None:
    clock = ManualClock()
    storage = LocalStorage(tmp_path / "assets", fsync=False)
    assets = AssetService(storage, clock, max_upload_bytes=1 << 20)
    await ClientService(db, clock).ensure_local_client()

    async def stored(data: bytes, job_id: str) -> Asset:
        asset = await assets.store_bytes(LOCAL_CLIENT.id, data, job_id=job_id)
        async with db.write() as conn:
            await assets.add(conn, asset)
        return asset

    await _job(db, clock, "old", finished=True)
    only_old = await stored(b"old bytes", "old")
    shared_old = await stored(b"shared bytes", "old")
    clock.advance(timedelta(days=20).total_seconds())
    await _job(db, clock, "new", finished=True)
    await _job(db, clock, "running", finished=False)
    await stored(b"shared bytes", "new")
    clock.advance(timedelta(days=11).total_seconds())  # "old" is 31 days old, "new" 11

    sweeper = RetentionSweeper(
        db, QueueRepository(db.dialect, clock), assets, clock, days=30, grace=0
    )
    assert await sweeper.purge() == 1

    async with db.read() as conn:
        left = set(await conn.scalars(select(jobs.c.id)))
        item_count = await conn.scalar(select(func.count()).select_from(items))
    assert left == {"new", "running"}
    assert item_count == 2
    assert not await storage.exists(only_old.storage_key)
    assert await storage.exists(shared_old.storage_key)  # the new job's asset uses these bytes
    assert await sweeper.purge() == 0


async def test_a_source_with_its_own_window_is_kept_exactly_that_long(
    db: Database, tmp_path: Path
) -> None:
    clock = ManualClock()
    assets = AssetService(
        LocalStorage(tmp_path / "assets", fsync=False), clock, max_upload_bytes=1024
    )
    await ClientService(db, clock).ensure_local_client()
    await _job(db, clock, "native", finished=True)
    await _job(db, clock, "photo", finished=True, source="photos")
    await _job(db, clock, "quick", finished=True, source="quick")
    clock.advance(timedelta(days=31).total_seconds())
    sweeper = RetentionSweeper(
        db,
        QueueRepository(db.dialect, clock),
        assets,
        clock,
        days=365,
        days_by_source={"photos": 30, "quick": 60},
        grace=0,
    )
    # The global year keeps the native job; the photos go after their 30 days, whatever
    # the global window; "quick" has 60 days (longer than 30, shorter than the year).
    assert await sweeper.purge() == 1
    async with db.read() as conn:
        assert set(await conn.scalars(select(jobs.c.id))) == {"native", "quick"}
    clock.advance(timedelta(days=30).total_seconds())
    assert await sweeper.purge() == 1
    async with db.read() as conn:
        assert set(await conn.scalars(select(jobs.c.id))) == {"native"}
