"""Background upkeep of boxes: keeping what finished generations said, freeing bytes.

``settle_finished`` walks the generations not settled yet (or settled FAILED: a job can be
retried) in batches, each in one short write transaction, and lets ``BoxService.settle``
keep what their finished jobs said. It runs every minute beside the workers, far inside
the retention window (a day at least), so a job is never purged before its asset kept its
result. ``drop_unused_bytes`` deletes, a minute after a box was deleted, the stored bytes
no asset refers to any more (the minute lets an upload of the same bytes, which stores
them before writing its row, finish first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from conveyor.assets.service import AssetService
from conveyor.compat.boxes.service import BoxService
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.core.periodic import every

__all__ = ["BoxSettler"]

log = logging.getLogger(__name__)


class BoxSettler:
    def __init__(
        self,
        db: Database,
        boxes: BoxService,
        assets: AssetService,
        clock: Clock,
        *,
        interval: float = 60.0,
        batch: int = 200,
        grace: float = 60.0,
    ) -> None:
        self.db = db
        self.boxes = boxes
        self.assets = assets
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.grace = grace
        self._freeing: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await every(self.interval, self.settle_finished, name="box settling")

    async def settle_finished(self) -> int:
        """Settle every generation whose job has finished; returns how many changed."""
        changed = 0
        after = None
        while True:
            async with self.db.write() as conn:
                rows = await self.boxes.unsettled(conn, after=after, limit=self.batch)
                changed += await self.boxes.settle(conn, rows)
            if len(rows) < self.batch:
                return changed
            after = (rows[-1].created_at, rows[-1].id)

    def drop_unused_bytes(self, storage_keys: Iterable[str]) -> None:
        """After the grace period, delete the bytes of these keys that nothing uses."""
        keys = sorted(set(storage_keys))
        if not keys:
            return
        freeing = asyncio.get_running_loop().create_task(self._free(keys), name="box-bytes")
        self._freeing.add(freeing)
        freeing.add_done_callback(self._freeing.discard)

    async def _free(self, keys: list[str]) -> None:
        await self.clock.sleep(self.grace)
        try:
            async with self.db.read() as conn:
                in_use = await self.assets.storage_keys_in_use(conn, keys)
            for key in keys:
                if key not in in_use:
                    await self.assets.delete_bytes(key)
        except Exception:
            # The bytes stay (orphaned, harmless); the next deleted box frees its own.
            log.exception("freeing the bytes of a deleted box failed")

    async def close(self) -> None:
        for freeing in list(self._freeing):
            freeing.cancel()
        for freeing in list(self._freeing):
            with contextlib.suppress(asyncio.CancelledError):
                await freeing
