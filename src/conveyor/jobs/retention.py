"""Retention: jobs finished longer ago than the window are deleted with their items, step
runs and assets; stored bytes no other asset refers to are deleted too. One node at a time
does it, under a lease, once an hour."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete

from conveyor.assets import repository as assets_repo
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.core.periodic import every
from conveyor.jobs import repository as repo
from conveyor.jobs.models import jobs
from conveyor.queue import QueueRepository
from conveyor.storage import StorageBackend

log = logging.getLogger(__name__)


class RetentionSweeper:
    def __init__(
        self,
        db: Database,
        queue: QueueRepository,
        storage: StorageBackend,
        clock: Clock,
        *,
        days: int,
        interval: float = 3600.0,
        batch: int = 200,
    ) -> None:
        self.db = db
        self.queue = queue
        self.storage = storage
        self.clock = clock
        self.days = days
        self.interval = interval
        self.batch = batch

    async def run(self, *, holder: str) -> None:
        await every(self.interval, lambda: self.sweep(holder), name="retention sweep")

    async def sweep(self, holder: str) -> None:
        async with self.db.write() as conn:
            leased = await self.queue.try_lease(conn, "retention", holder, ttl=self.interval * 1.5)
        if leased:
            purged = await self.purge()
            if purged:
                log.info("retention purged %d jobs older than %d days", purged, self.days)

    async def purge(self) -> int:
        """Delete expired jobs in batches; returns how many."""
        cutoff = self.clock.now() - timedelta(days=self.days)
        total = 0
        while True:
            async with self.db.write() as conn:
                job_ids = await repo.finished_job_ids_before(conn, cutoff, self.batch)
                if not job_ids:
                    break
                keys = await assets_repo.delete_assets_of_jobs(conn, job_ids)
                await conn.execute(delete(jobs).where(jobs.c.id.in_(job_ids)))
            for key in sorted(set(keys)):
                async with self.db.read() as conn:
                    in_use = await assets_repo.storage_key_in_use(conn, key)
                if not in_use:
                    await self.storage.delete(key)
            total += len(job_ids)
        return total
