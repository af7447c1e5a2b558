"""Following a job over time: waiting for its end, its event stream, its results archive.

These outlive any one transaction (a wait lasts minutes, a ZIP streams for as long as the
client reads), so unlike the other services they hold the database and open a short read
each time they look. They listen on the event bus and also re-read the job every second, so
they are right even when an event never reaches this node (SQLite with workers in other
processes).

Stream events carry an ``id`` (milliseconds since the epoch when sent). A client that
reconnects with ``Last-Event-ID`` gets the job's state again and every item that finished
since a little before that id (``RESUME_MARGIN``): item events may repeat, never go missing;
clients tell them apart by ``item_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.models import Asset
from conveyor.assets.service import AssetService
from conveyor.core.clock import Clock
from conveyor.core.db import Database, database_unreachable
from conveyor.errors import NotFound
from conveyor.jobs import repository as repo
from conveyor.jobs.events import EventBus, JobEvent
from conveyor.jobs.models import ItemRow, JobRow
from conveyor.jobs.schemas import (
    REASONS_SHOWN,
    ErrorReason,
    ItemOut,
    JobOut,
    JobResults,
    Progress,
)
from conveyor.storage import ZipEntry, stream_zip

log = logging.getLogger(__name__)

# Without an event, a stream or a wait re-reads the job this often (events from other nodes
# carry only what must travel at once; see jobs.events.CROSS_NODE_EVENTS).
RECHECK_SECONDS = 1.0
RESUME_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One Server-Sent Event: ``event`` name, JSON ``data``, ``id`` to resume from."""

    event: str
    data: dict[str, Any]
    id: str


def event_id(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def parse_event_id(value: str | None) -> datetime | None:
    """The moment a ``Last-Event-ID`` we issued stands for; None for anything else."""
    if not value or not value.isdigit() or len(value) > 15:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _item_data(job_id: str, item: ItemRow) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "item_id": item.id,
        "key": item.key,
        "seq": item.seq,
        "error": item.error,
    }


class FileUrls(Protocol):
    """Where a client downloads a stored file without an API key (``FileLinks``)."""

    async def url_for(self, asset: Asset, *, request_base: str) -> str: ...


def _file_refs(value: Any) -> list[dict[str, Any]]:
    """Every file an item's output names (``{asset_id, mime_type, ...}``), at any depth:
    recipes nest them where their results belong."""
    if isinstance(value, list):
        return [ref for element in value for ref in _file_refs(element)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("asset_id"), str) and "mime_type" in value:
        return [value]
    return [ref for element in value.values() for ref in _file_refs(element)]


class JobStreams:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        events: EventBus,
        assets: AssetService,
        file_urls: FileUrls | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.events = events
        self.assets = assets
        self.file_urls = file_urls

    async def _job(self, job_id: str) -> JobRow:
        async with self.db.read() as conn:
            job = await repo.get_job(conn, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found", code="JOB_NOT_FOUND")
        return job

    async def wait(self, job_id: str, timeout: float) -> JobRow:
        """The job once finished, or as it is when ``timeout`` passes, whichever is first."""
        deadline = self.clock.monotonic() + timeout
        with self.events.subscribe(job_id) as queue:
            while True:
                job = await self._job(job_id)
                remaining = deadline - self.clock.monotonic()
                if job.finished or remaining <= 0:
                    return job
                # Events wake us early; the re-read covers workers in other processes.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(RECHECK_SECONDS, remaining)):
                        while True:
                            event = await queue.get()
                            if event.type in ("job.finished", "job.cancelled"):
                                break

    def _event(self, name: str, data: dict[str, Any]) -> StreamEvent:
        return StreamEvent(name, data, event_id(self.clock.now()))

    async def follow(
        self, job: JobRow, *, resume_from: datetime | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The job's events until it ends: ``job`` (the state now), ``item.<status>`` for
        each item that ends, ``progress`` and ``stage`` when they change, ``finished``."""
        with self.events.subscribe(job.id) as queue:
            since = self.clock.now()
            snapshot = JobOut.from_row(job)
            yield self._event("job", snapshot.model_dump(mode="json"))
            last_progress, last_stage = snapshot.progress, job.stage
            reported: set[str] = set()
            read_at = since
            if resume_from is not None:
                async for missed in self._items_since(job, resume_from - RESUME_MARGIN, reported):
                    yield missed
            while not job.finished:
                event: JobEvent | None = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_SECONDS):
                        event = await queue.get()
                if event is not None and event.type.startswith("item."):
                    item_id = str(event.data.get("item_id"))
                    if item_id not in reported:
                        reported.add(item_id)
                        yield self._event(event.type, {"job_id": job.id, **event.data})
                    continue
                if event is not None and event.type == "job.progress":
                    # The event carries the row as committed: no need to read it again.
                    data = dict(event.data)
                    status = str(data.pop("status"))
                    progress = Progress(**data)
                    stage = last_stage
                else:
                    # A quiet second or a job-level event: the row itself, right even when
                    # events were missed or happened on another node.
                    reading_at = self.clock.now()
                    try:
                        fresh = await self._job(job.id)
                        progress = JobOut.from_row(fresh).progress
                        # Items that ended on another node (API nodes without workers): their
                        # events stay there, the rows say which ones ended since the last look.
                        ended = (
                            await self._ended_since(fresh, read_at - RESUME_MARGIN, reported)
                            if progress != last_progress
                            else []
                        )
                    except Exception as exc:
                        if not database_unreachable(exc):
                            raise
                        # The database is away for a moment (a restart, a fail-over): the
                        # stream stays open and looks again, as it would after a quiet second.
                        log.warning("job %s stream: database unreachable (%s)", job.id, exc)
                        continue
                    job, status, stage, read_at = fresh, fresh.status, fresh.stage, reading_at
                    for event_out in ended:
                        yield event_out
                if progress != last_progress:
                    last_progress = progress
                    yield self._event(
                        "progress", {"job_id": job.id, "status": status, **progress.model_dump()}
                    )
                if stage != last_stage and not job.finished:
                    last_stage = stage
                    yield self._event("stage", {"job_id": job.id, "stage": stage})
            # An item's event can trail the commit that finished the job (it is published
            # after commit, by another task or node): report from the rows what we did not see.
            async for trailing in self._items_since(job, since, reported):
                yield trailing
            yield self._event("finished", JobOut.from_row(job).model_dump(mode="json"))

    async def _items_since(
        self, job: JobRow, since: datetime, reported: set[str]
    ) -> AsyncIterator[StreamEvent]:
        for event_out in await self._ended_since(job, since, reported):
            yield event_out

    async def _ended_since(
        self, job: JobRow, since: datetime, reported: set[str]
    ) -> list[StreamEvent]:
        """Events of the items that ended since ``since`` and were not reported yet."""
        async with self.db.read() as conn:
            finished = await repo.items_finished_since(conn, job.id, since)
        fresh = [item for item in finished if item.id not in reported]
        reported.update(item.id for item in fresh)
        return [self._event(f"item.{item.status}", _item_data(job.id, item)) for item in fresh]

    async def results(self, job: JobRow, *, request_base: str | None = None) -> JobResults:
        """The job with every item, as ``GET /v1/jobs/{id}/results`` shows them; with
        ``request_base`` (where the request came to), each output file has a ``url``."""
        async with self.db.read() as conn:
            items = await repo.list_items(conn, job.id)
            found = await repo.error_reasons(conn, [job.id]) if job.failed else {}
            shown = [ItemOut.from_row(i) for i in items]
            if request_base is not None and self.file_urls is not None:
                await self._add_urls(conn, shown, self.file_urls, request_base)
        reasons = [ErrorReason(code=c, message=m, count=n) for c, m, n in found.get(job.id, [])]
        return JobResults(job=JobOut.from_row(job, reasons[:REASONS_SHOWN]), items=shown)

    async def _add_urls(
        self, conn: AsyncConnection, items: list[ItemOut], urls: FileUrls, request_base: str
    ) -> None:
        refs = [ref for item in items for ref in _file_refs(item.output)]
        stored = await self.assets.get_many(conn, sorted({ref["asset_id"] for ref in refs}))
        made: dict[str, str] = {}
        for ref in refs:
            asset = stored.get(ref["asset_id"])
            if asset is None:
                ref["url"] = None  # purged: the listing still names it
                continue
            if asset.id not in made:
                made[asset.id] = await urls.url_for(asset, request_base=request_base)
            ref["url"] = made[asset.id]

    def archive(self, results: JobResults) -> AsyncIterator[bytes]:
        """A ZIP streamed as it is read: ``results.json`` and every item's result files, in
        one folder per item. Files purged meanwhile are left out (the document lists them)."""
        return stream_zip(self._zip_entries(results))

    async def _zip_entries(self, results: JobResults) -> AsyncIterator[ZipEntry]:
        document = results.model_dump_json(indent=2).encode()
        yield ZipEntry("results.json", _once(document), size=len(document))
        files_of = {item.id: (item.output or {}).get("files") or [] for item in results.items}
        wanted = sorted({str(ref.get("asset_id")) for refs in files_of.values() for ref in refs})
        async with self.db.read() as conn:
            stored = await self.assets.get_many(conn, wanted)
        for item in results.items:
            folder = f"{item.seq + 1:05d}-{item.key or item.id}"
            for index, ref in enumerate(files_of[item.id]):
                asset = stored.get(str(ref.get("asset_id")))
                if asset is None:
                    continue
                extension = (
                    asset.storage_key.rsplit(".", 1)[-1] if "." in asset.storage_key else "bin"
                )
                yield ZipEntry(
                    f"{folder}/{index + 1}.{extension}",
                    lambda asset=asset: self.assets.stream(asset),  # type: ignore[misc]
                    size=asset.size,
                    modified=asset.created_at,
                )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
