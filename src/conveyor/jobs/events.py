"""Job events: an in-process bus, bridged across nodes by PostgreSQL ``NOTIFY``.

Every item or job transition publishes an event after its transaction commits. Subscribers
(SSE streams, the waiter behind ``wait``/sync requests, the cancellation watch of running
items) get them from the bus of their own process. On PostgreSQL the event is also sent with
``pg_notify`` inside the same transaction, so other nodes hear it exactly when it becomes
true; a node ignores its own notifications. Where no bridge exists (SQLite with workers in
other processes) subscribers also re-read the job now and then, so nothing depends on an
event arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.core.db import after_commit
from conveyor.core.ids import new_id

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "conveyor_events"
# A provider called back about a step's task: the worker running the step polls it now.
STEP_WAKE = "step.wake"
# What other nodes must hear at once; item and progress events stay on their node (streams
# elsewhere re-read the job every second), so a busy job doesn't NOTIFY twice per item.
CROSS_NODE_EVENTS = frozenset({"job.finished", "job.cancelled", "job.status", STEP_WAKE})
# NOTIFY payloads must stay under 8000 bytes; larger events are sent without their data.
_NOTIFY_LIMIT = 7000


@dataclass(frozen=True, slots=True)
class JobEvent:
    job_id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"job_id": self.job_id, "type": self.type, "data": self.data})


class EventBus:
    def __init__(self, *, queue_size: int = 1000) -> None:
        self.node_id = new_id()
        self._subscribers: dict[str, set[asyncio.Queue[JobEvent]]] = {}
        self._all: set[asyncio.Queue[JobEvent]] = set()
        self._queue_size = queue_size

    def publish(self, event: JobEvent) -> None:
        for queue in (*self._subscribers.get(event.job_id, ()), *self._all):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A slow subscriber loses events, never blocks the publisher; subscribers
                # re-read the job on their own schedule anyway.
                log.debug("event subscriber queue full; dropping %s", event.type)

    @contextlib.contextmanager
    def subscribe(self, job_id: str | None = None) -> Iterator[asyncio.Queue[JobEvent]]:
        """Events of one job, or of every job when ``job_id`` is None."""
        queue: asyncio.Queue[JobEvent] = asyncio.Queue(self._queue_size)
        bucket = self._all if job_id is None else self._subscribers.setdefault(job_id, set())
        bucket.add(queue)
        try:
            yield queue
        finally:
            bucket.discard(queue)
            if job_id is not None and not bucket:
                self._subscribers.pop(job_id, None)

    async def emit(self, conn: AsyncConnection, event: JobEvent) -> None:
        """Publish ``event`` once ``conn``'s transaction commits (and to other nodes)."""
        after_commit(conn, lambda: self.publish(event))
        if conn.dialect.name == "postgresql" and event.type in CROSS_NODE_EVENTS:
            payload = {"node": self.node_id, "job_id": event.job_id, "type": event.type}
            body = json.dumps({**payload, "data": event.data})
            if len(body) > _NOTIFY_LIMIT:
                body = json.dumps({**payload, "data": {}})
            await conn.execute(select(func.pg_notify(EVENTS_CHANNEL, body)))

    def on_notification(self, payload: str) -> None:
        """Feed a ``NOTIFY`` from another node into this node's bus."""
        if not payload:
            return
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("ignoring malformed event notification")
            return
        if message.get("node") == self.node_id:
            return
        self.publish(JobEvent(message["job_id"], message["type"], message.get("data") or {}))
