"""Which running jobs were cancelled, for the steps that poll on their behalf.

Told by events of this node's bus, and re-checked every few seconds with one query for all
tracked jobs, since a cancel made on another node may not reach us as an event. Work that
can't wait for its next look (an item fetching its input URLs) registers a callback that
runs the moment the cancel is known: the item's handler stops its coroutine, which closes
its in-flight connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from conveyor.core.db import Database
from conveyor.core.periodic import cancelling
from conveyor.jobs.events import EventBus
from conveyor.jobs.items import ItemService

log = logging.getLogger(__name__)


class CancellationWatch:
    """Which in-flight jobs were cancelled: told by events, and re-checked every few seconds
    with one query for all tracked jobs (events from other processes may not reach us)."""

    def __init__(
        self, db: Database, events: EventBus, items: ItemService, *, interval: float = 2.0
    ) -> None:
        self._db = db
        self._events = events
        self._items = items
        self._interval = interval
        self._tracked: dict[str, int] = {}
        self._cancelled: set[str] = set()
        self._on_cancel: dict[str, set[Callable[[], None]]] = {}

    def track(self, job_id: str, on_cancel: Callable[[], None] | None = None) -> None:
        """Watch ``job_id`` (once per running item); ``on_cancel`` runs when it is cancelled."""
        self._tracked[job_id] = self._tracked.get(job_id, 0) + 1
        if on_cancel is not None:
            if job_id in self._cancelled:
                on_cancel()
            else:
                self._on_cancel.setdefault(job_id, set()).add(on_cancel)

    def untrack(self, job_id: str, on_cancel: Callable[[], None] | None = None) -> None:
        if on_cancel is not None:
            callbacks = self._on_cancel.get(job_id)
            if callbacks is not None:
                callbacks.discard(on_cancel)
                if not callbacks:
                    del self._on_cancel[job_id]
        left = self._tracked.get(job_id, 0) - 1
        if left <= 0:
            self._tracked.pop(job_id, None)
            self._cancelled.discard(job_id)
        else:
            self._tracked[job_id] = left

    def _cancel(self, job_ids: set[str]) -> None:
        for job_id in job_ids - self._cancelled:
            self._cancelled.add(job_id)
            for callback in list(self._on_cancel.pop(job_id, ())):
                callback()

    def reopened(self, job_id: str) -> None:
        """The job runs again (a retry reopened its cancelled items): forget its cancel. A
        cancel made after that is learnt again from its event or the next check."""
        self._cancelled.discard(job_id)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled

    async def run(self) -> None:
        with self._events.subscribe() as queue:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        while True:
                            event = await queue.get()
                            if event.type == "job.cancelled" and event.job_id in self._tracked:
                                self._cancel({event.job_id})
                if self._tracked:
                    try:
                        async with self._db.read() as conn:
                            self._cancel(
                                await self._items.cancelled_among(conn, list(self._tracked))
                            )
                    except Exception:
                        if cancelling():
                            raise asyncio.CancelledError() from None
                        log.exception("cancellation check failed")
