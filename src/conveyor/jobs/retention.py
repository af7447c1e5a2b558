"""Retention: jobs finished longer ago than the window are deleted with their items, step
runs and assets; stored bytes no other asset refers to are deleted too. One node at a time
does it, under a lease, once an hour.

The window is ``days`` for every job, except for the sources given their own in
``days_by_source`` (an API whose promise differs: seed 004 keeps its history 30 days,
whatever the global setting), which are kept exactly that long."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from conveyor.assets.service import AssetService
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.core.periodic import every
from conveyor.jobs import repository as repo
from conveyor.queue import QueueRepository

log = logging.getLogger(__name__)


class RetentionSweeper:
    def __init__(
        self,
        db: Database,
        queue: QueueRepository,
        assets: AssetService,
        clock: Clock,
        *,
        days: int,
        days_by_source: Mapping[str, int] | None = None,
        interval: float = 3600.0,
        batch: int = 200,
        grace: float = 60.0,
    ) -> None:
        self.db = db
        self.queue = queue
        self.assets = assets
        self.clock = clock
        self.days = days
        self.days_by_source = dict(days_by_source or {})
        self.interval = interval
        self.batch = batch
        # Bytes freed by a purge are deleted only if still unused this long after: a new
        # asset may reuse the same bytes and write its row a moment after storing them.
        self.grace = grace

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
        """Delete expired jobs in batches, then the bytes nothing uses any more; returns how
        many jobs."""
        now = self.clock.now()
        own = list(self.days_by_source)
        rules: list[tuple[datetime, list[str] | None, list[str]]] = [
            (now - timedelta(days=self.days), None, own)
        ]
        rules += [(now - timedelta(days=d), [s], []) for s, d in self.days_by_source.items()]
        total = 0
        freed: set[str] = set()
        for cutoff, sources, other_than in rules:
            while True:
                async with self.db.write() as conn:
                    job_ids = await repo.finished_job_ids_before(
                        conn, cutoff, self.batch, sources=sources, other_than=other_than
                    )
                    if not job_ids:
                        break
                    freed |= await self.assets.delete_of_jobs(conn, job_ids)
                    await repo.delete_jobs(conn, job_ids)
                total += len(job_ids)
        if freed:
            await self.clock.sleep(self.grace)
            async with self.db.read() as conn:
                in_use = await self.assets.storage_keys_in_use(conn, sorted(freed))
            for key in sorted(freed - in_use):
                await self.assets.delete_bytes(key)
        return total
