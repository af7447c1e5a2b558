"""Boxes and their assets: creating, reading, generating, deleting, and settling.

Every method takes the caller's connection (``settling.BoxSettler`` and the endpoints open the
transactions). A box and its assets belong to one client: another client's box or asset is
answered 404 exactly like one that does not exist.

**Status is read, not stored.** An asset generated here is one job of recipe ``model`` with
one item (``source="boxes"``: it is listed in ``/v1/jobs``, retried by the queue, resumed
after a restart). Reading the asset reads the item: pending → ``PENDING``, running →
``PROCESSING``, completed → ``COMPLETED`` with the result file, failed or cancelled →
``FAILED`` with the item's error; ``external_task_id`` is the provider's task id of the
item's latest step run. Nothing is copied from the job while it exists, so the two never
disagree. ``settle`` keeps what a finished job said on the asset row, with the asset's own
copy of the result's row (the bytes are shared, content-addressed): retention deletes old
jobs and their files' rows, and a box keeps its results.

**Deleting a box** deletes its assets, cancels their generations that still run (their jobs
stay listed as cancelled until retention), and deletes the rows of the files the box owns;
bytes no other asset uses are deleted a minute later (``BoxSettler.drop_unused_bytes``).
An asset of another box whose parent was in the deleted box keeps its file; its
``parent_asset`` becomes null.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.models import SOURCE_GENERATED, Asset
from conveyor.assets.service import AssetService
from conveyor.clients.service import Client
from conveyor.compat.boxes import repository as repo
from conveyor.compat.boxes.generation import GenerationPlanner, ParentFile
from conveyor.compat.boxes.links import FileLinks
from conveyor.compat.boxes.models import (
    COMPLETED,
    FAILED,
    JOB_SOURCE,
    PENDING,
    PROCESSING,
    UPLOADED,
    BoxAssetRow,
    BoxRow,
)
from conveyor.compat.boxes.schemas import AssetOut, BoxOut, GenerateRequest
from conveyor.content.sniff import IMAGE_MIMES
from conveyor.core.clock import Clock
from conveyor.core.ids import new_id
from conveyor.errors import NotFound
from conveyor.jobs.models import ITEM_COMPLETED, ITEM_FAILED, ITEM_PENDING, ITEM_RUNNING, ItemRow
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService

__all__ = ["UPLOAD_TYPES", "AssetView", "BoxService"]

# What a box holds: pictures, video and audio (never documents, HTML or SVG).
UPLOAD_TYPES: Final = IMAGE_MIMES | frozenset(
    {
        "video/mp4",
        "video/webm",
        "video/quicktime",
        "video/ogg",
        "video/x-matroska",
        "video/3gpp",
        "audio/wav",
        "audio/mpeg",
        "audio/ogg",
        "audio/flac",
        "audio/aac",
        "audio/mp4",
    }
)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# Ids are UUIDs; anything else (the seed's integers, junk) is simply not found, unqueried.
_ID: Final = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_JOB_GONE: Final = "the generation's job was deleted before it finished"


@dataclass(frozen=True, slots=True)
class AssetView:
    """An asset row with what its job says now (or, once the job is gone, said last)."""

    row: BoxAssetRow
    status: str
    error_message: str | None
    external_task_id: str | None
    file: Asset | None
    updated_at: datetime
    # Read from a job that still exists (as opposed to what was settled on the row).
    live: bool

    def as_parent(self) -> ParentFile:
        return ParentFile(
            self.row.id,
            self.status,
            self.file.id if self.file is not None else None,
            self.file.mime_type if self.file is not None else None,
        )


class BoxNotFound(NotFound):
    code = "BOX_NOT_FOUND"


class AssetNotFound(NotFound):
    code = "ASSET_NOT_FOUND"


def _result_asset_id(item: ItemRow) -> str | None:
    files = (item.output or {}).get("files") or []
    first = files[0] if files and isinstance(files[0], dict) else {}
    asset_id = first.get("asset_id")
    return asset_id if isinstance(asset_id, str) else None


class BoxService:
    def __init__(
        self,
        jobs: JobService,
        assets: AssetService,
        planner: GenerationPlanner,
        links: FileLinks,
        clock: Clock,
    ) -> None:
        self.jobs = jobs
        self.assets = assets
        self.planner = planner
        self.links = links
        self.clock = clock

    # -- boxes ------------------------------------------------------------------------------

    async def create_box(self, conn: AsyncConnection, client: Client, name: str) -> BoxRow:
        now = self.clock.now()
        box = BoxRow(new_id(), client.id, name, now, now)
        await repo.insert_box(conn, box)
        return box

    async def box(self, conn: AsyncConnection, client: Client, box_id: str) -> BoxRow:
        """The client's box; 404 for a box of another client as for none."""
        box = await repo.get_box(conn, box_id) if _ID.match(box_id) else None
        if box is None or box.client_id != client.id:
            raise BoxNotFound(f"box {box_id} not found")
        return box

    async def boxes(
        self, conn: AsyncConnection, client: Client, *, limit: int, offset: int
    ) -> list[BoxOut]:
        rows = await repo.list_boxes(conn, client.id, limit=limit, offset=offset)
        counts = await repo.count_assets(conn, [box.id for box in rows])
        return [BoxOut.from_row(box, counts.get(box.id, 0)) for box in rows]

    async def box_out(self, conn: AsyncConnection, box: BoxRow) -> BoxOut:
        counts = await repo.count_assets(conn, [box.id])
        return BoxOut.from_row(box, counts.get(box.id, 0))

    async def rename(self, conn: AsyncConnection, client: Client, box_id: str, name: str) -> BoxRow:
        box = await self.box(conn, client, box_id)
        now = self.clock.now()
        await repo.rename_box(conn, box.id, name, now)
        return BoxRow(box.id, box.client_id, name, box.created_at, now)

    async def delete_box(self, conn: AsyncConnection, client: Client, box_id: str) -> set[str]:
        """Delete the box with its assets and their files' rows, cancelling generations
        still running; returns the storage keys whose bytes may now be unused."""
        box = await self.box(conn, client, box_id)
        for job_id in await repo.job_ids(conn, box.id):
            job = await self.jobs.get(conn, client, job_id)
            if not job.finished:
                await self.jobs.cancel(conn, client, job_id)
        file_ids = await repo.file_asset_ids(conn, box.id)
        await repo.delete_box(conn, box.id)
        return await self.assets.delete(conn, file_ids)

    # -- assets -----------------------------------------------------------------------------

    async def store_upload(
        self, client: Client, chunks: AsyncIterable[bytes], *, filename: str | None
    ) -> Asset:
        """Store an upload's bytes (outside any transaction); returns the row to record."""
        # Control characters (NUL above all) have no place in a stored name.
        name = _CONTROL.sub("", filename) if filename else None
        return await self.assets.ingest(
            client.id, chunks, filename=name, allowed_types=UPLOAD_TYPES
        )

    async def add_upload(
        self, conn: AsyncConnection, client: Client, box_id: str, file: Asset
    ) -> AssetView:
        """Record a stored upload in the box: the asset is COMPLETED at once."""
        box = await self.box(conn, client, box_id)
        await self.assets.add(conn, file)
        now = self.clock.now()
        row = BoxAssetRow(
            id=new_id(),
            box_id=box.id,
            client_id=client.id,
            source_type=UPLOADED,
            parent_id=None,
            model=None,
            prompt=None,
            config=None,
            job_id=None,
            file_asset_id=file.id,
            settled_status=COMPLETED,
            error_message=None,
            external_task_id=None,
            created_at=now,
            updated_at=now,
        )
        await repo.insert_asset(conn, row)
        return AssetView(row, COMPLETED, None, None, file, now, live=False)

    async def generate(
        self, conn: AsyncConnection, client: Client, box_id: str, request: GenerateRequest
    ) -> AssetView:
        """Check the request (nothing reaches a provider if it is wrong), then write the
        asset and its job in the caller's transaction: the asset is PENDING."""
        box = await self.box(conn, client, box_id)
        parent = None
        if request.parent_asset is not None:
            try:
                parent = (await self.asset(conn, client, request.parent_asset)).as_parent()
            except AssetNotFound:
                raise AssetNotFound(f"parent asset {request.parent_asset} not found") from None
        plan = self.planner.plan(request, parent)
        submission = self.jobs.prepare(
            JobCreate(model=plan.model_id, items=[plan.inputs]), source=JOB_SOURCE
        )
        created = await self.jobs.create(conn, client, submission)
        now = self.clock.now()
        row = BoxAssetRow(
            id=new_id(),
            box_id=box.id,
            client_id=client.id,
            source_type=plan.source_type,
            parent_id=plan.parent_id,
            model=plan.model_id,
            prompt=request.prompt,
            config=request.config or None,
            job_id=created.job.id,
            file_asset_id=None,
            settled_status=None,
            error_message=None,
            external_task_id=None,
            created_at=now,
            updated_at=now,
        )
        await repo.insert_asset(conn, row)
        (view,) = await self._views(conn, [row])
        return view

    async def asset(self, conn: AsyncConnection, client: Client, asset_id: str) -> AssetView:
        row = await repo.get_asset(conn, asset_id) if _ID.match(asset_id) else None
        if row is None or row.client_id != client.id:
            raise AssetNotFound(f"asset {asset_id} not found")
        (view,) = await self._views(conn, [row])
        return view

    async def assets_of(
        self, conn: AsyncConnection, client: Client, box_id: str, *, limit: int, offset: int
    ) -> list[AssetView]:
        """The box's assets, newest first."""
        box = await self.box(conn, client, box_id)
        rows = await repo.list_assets(conn, box.id, limit=limit, offset=offset)
        return await self._views(conn, rows)

    async def out(self, view: AssetView, *, request_base: str) -> AssetOut:
        """The seed's answer for an asset, with a fresh ``file_url`` when it has a file."""
        row, file = view.row, view.file
        shown = file if view.status == COMPLETED else None
        return AssetOut(
            id=row.id,
            box=row.box_id,
            status=view.status,
            source_type=row.source_type,
            parent_asset=row.parent_id,
            external_task_id=view.external_task_id,
            error_message=view.error_message,
            file_url=await self.links.url_for(shown, request_base=request_base) if shown else None,
            mime_type=shown.mime_type if shown else None,
            size=shown.size if shown else None,
            model=row.model,
            prompt=row.prompt,
            config=row.config,
            job_id=row.job_id,
            created_at=row.created_at,
            updated_at=view.updated_at,
        )

    # -- what jobs say ----------------------------------------------------------------------

    async def _views(self, conn: AsyncConnection, rows: list[BoxAssetRow]) -> list[AssetView]:
        """Each row with its job's item, task id and file, read in a few queries for all."""
        by_job = await self.jobs.items_of_jobs(conn, [r.job_id for r in rows if r.job_id])
        items = {job_id: found[0] for job_id, found in by_job.items() if found}
        task_ids = await self.jobs.latest_task_ids(conn, [item.id for item in items.values()])
        wanted: set[str] = set()
        for row in rows:
            item = items.get(row.job_id or "")
            result = _result_asset_id(item) if item is not None else None
            wanted.update(i for i in (row.file_asset_id, result) if i is not None)
        files = await self.assets.get_many(conn, sorted(wanted))
        return [self._view(row, items.get(row.job_id or ""), task_ids, files) for row in rows]

    def _view(
        self,
        row: BoxAssetRow,
        item: ItemRow | None,
        task_ids: dict[str, str],
        files: dict[str, Asset],
    ) -> AssetView:
        kept = files.get(row.file_asset_id or "")
        if item is None:
            # An upload, or a generation whose job retention has deleted: what was settled.
            status = row.settled_status or FAILED
            error = row.error_message if row.settled_status else row.error_message or _JOB_GONE
            return AssetView(
                row, status, error, row.external_task_id, kept, row.updated_at, live=False
            )
        task_id = task_ids.get(item.id)
        updated = max(row.updated_at, item.updated_at)
        if item.status in (ITEM_PENDING, ITEM_RUNNING):
            status = PENDING if item.status == ITEM_PENDING else PROCESSING
            return AssetView(row, status, None, task_id, None, updated, live=True)
        if item.status == ITEM_COMPLETED:
            file = kept or files.get(_result_asset_id(item) or "")
            if file is not None:
                return AssetView(row, COMPLETED, None, task_id, file, updated, live=True)
            error = "the model finished without a file"
        elif item.status == ITEM_FAILED:
            error = item.error or "the generation failed"
        else:
            error = item.error or "the generation was cancelled"
        return AssetView(row, FAILED, error, task_id, None, updated, live=True)

    # -- settling ---------------------------------------------------------------------------

    async def unsettled(
        self, conn: AsyncConnection, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[BoxAssetRow]:
        return await repo.unsettled_generations(conn, after=after, limit=limit)

    async def settle(self, conn: AsyncConnection, rows: list[BoxAssetRow]) -> int:
        """Keep on each row what its finished job says; returns how many rows changed."""
        changed = 0
        for view in await self._views(conn, rows):
            if not view.live or view.status not in (COMPLETED, FAILED):
                continue
            row = view.row
            if (row.settled_status, row.error_message) == (view.status, view.error_message):
                continue
            copy = self._own_copy(view) if view.status == COMPLETED else None
            if copy is not None:
                await self.assets.add(conn, copy)
            done = await repo.settle(
                conn,
                row.id,
                status=view.status,
                error_message=view.error_message,
                external_task_id=view.external_task_id,
                file_asset_id=copy.id if copy is not None else row.file_asset_id,
                updated_at=view.updated_at,
            )
            if done:
                changed += 1
            elif copy is not None:
                await self.assets.delete(conn, [copy.id])
        return changed

    def _own_copy(self, view: AssetView) -> Asset | None:
        """A row of the asset's own for the job's result file (same bytes, no job)."""
        result = view.file
        if result is None or result.job_id is None:
            return None
        meta: dict[str, Any] = {"box_asset_id": view.row.id, "job_id": result.job_id}
        return Asset(
            id=new_id(),
            client_id=view.row.client_id,
            sha256=result.sha256,
            mime_type=result.mime_type,
            size=result.size,
            storage_key=result.storage_key,
            source_type=SOURCE_GENERATED,
            parent_asset_id=result.parent_asset_id,
            job_id=None,
            item_id=None,
            filename=result.filename,
            meta=meta,
            created_at=self.clock.now(),
        )
