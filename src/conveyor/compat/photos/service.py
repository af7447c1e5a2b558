"""The seed-004 API on top of jobs: what a request starts, which job a seed id names, and
what to answer.

**Jobs.** A photo sent to ``/process_single`` is a ``product-photo`` job of one item,
``source="photos"``; its ``processing_id`` is the job's id. A ``/process_batch`` request is
one job with an item per file, ``source="photos-batch"``; its ``batch_id`` is the job's id.
Ids of other APIs' jobs, of the other kind, or of another client's jobs are 404 here. Every
job is created with the recipe's ``time_limit`` (``photos_time_limit``, the seed's 120 s per
image: the engine fails a photo that works longer) and a PNG final.

**Uploads.** Every file of a request is read (never more than 10 MB of it) and checked by
content before anything is stored; then the bytes go to storage, and one transaction writes
the asset rows, the job, its items and their tasks, and attaches each upload to its item
(so the photos' retention purges it with the job). A refused request leaves no row and no
job; a request refused after its bytes were stored (the database failing, say) leaves only
content-addressed bytes no row refers to, as any interrupted upload does.

**Images.** ``original`` is the upload, ``background`` the cut-out, ``final`` the photo on
white: each from the item's result once it is finished, or from its step's stored output
while the rest still runs, so a client sees the cut-out before the final is made. The seed
serves PNG: an original sent as JPEG or WEBP is converted when asked for.

Methods take the caller's connection; the endpoints open the transactions (``health``
opens its own: whether it can is part of the check).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.models import SOURCE_UPLOADED, Asset
from conveyor.assets.service import AssetService
from conveyor.catalog.service import CatalogService
from conveyor.clients.service import Client
from conveyor.compat.photos.catalogue import BACKGROUND_KIND, model_answer, models_answer
from conveyor.compat.photos.errors import (
    AnalysisServiceError,
    GenerationServiceError,
    InvalidParameter,
    PhotoApiError,
    PhotoNotFound,
)
from conveyor.compat.photos.health import health_answer
from conveyor.compat.photos.images import ImageBody, PngImages
from conveyor.compat.photos.limits import ConcurrencyLimit, TrustedProxies
from conveyor.compat.photos.progress import (
    batch_file_stems,
    batch_progress,
    current_step,
    failure_code,
    find_batch_image,
    history_entry,
    single_progress,
)
from conveyor.compat.photos.schemas import (
    BatchProgressOut,
    HealthOut,
    HistoryEntryOut,
    HistoryOut,
    ModelOut,
    ModelsOut,
    SingleProgressOut,
)
from conveyor.compat.photos.uploads import (
    MAX_FILE_BYTES,
    CheckedUpload,
    UploadedFile,
    check_upload,
    read_at_most,
    safe_filename,
)
from conveyor.config import Settings
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.errors import NotFound
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import ITEM_COMPLETED, STEP_SUCCEEDED, ItemRow, JobRow
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService, JobSubmission
from conveyor.recipes.product_photo import (
    AUTO_MODEL,
    MARKETPLACES,
    MAX_PROMPT,
    catalogue_model_id,
)

SOURCE_SINGLE = "photos"
SOURCE_BATCH = "photos-batch"
SOURCES = (SOURCE_SINGLE, SOURCE_BATCH)
RECIPE = "product-photo"
# One photo is someone watching a progress bar: it goes ahead of batch work.
SINGLE_PRIORITY = 10

Step = Literal["original", "background", "final"]


@dataclass(frozen=True, slots=True)
class PhotoForm:
    """The seed's form fields, checked: the ``product-photo`` options they become."""

    model: str | None = None
    lora_version: str | None = None
    enhance: bool = False
    prompt: str | None = None
    marketplace: str | None = None

    def options(self, time_limit: float) -> dict[str, Any]:
        options: dict[str, Any] = {
            "format": "png",
            "enhance": self.enhance,
            "time_limit": time_limit,
        }
        if self.model is not None:
            options["model"] = self.model
        if self.lora_version is not None:
            options["lora_version"] = self.lora_version
        if self.prompt is not None:
            options["custom_prompt_text"] = self.prompt
        if self.marketplace is not None:
            options["marketplace"] = self.marketplace
        return options


@dataclass(frozen=True, slots=True)
class CheckedPhoto:
    """A file of the request that is an acceptable photo (nothing stored yet)."""

    upload: UploadedFile
    filename: str | None
    info: CheckedUpload


class PhotosService:
    def __init__(
        self,
        jobs: JobService,
        items: ItemService,
        assets: AssetService,
        catalog: CatalogService,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.jobs = jobs
        self.items = items
        self.assets = assets
        self.images = PngImages(assets)
        self.catalog = catalog
        self.clock = clock
        self.time_limit = settings.photos_time_limit
        self.history_days = settings.photos_retention_days
        self.max_batch_files = settings.photos_batch_max_files
        self.proxies = TrustedProxies(settings.photos_trusted_proxies)
        self.limit = ConcurrencyLimit(settings.photos_concurrent_requests)

    # -- who is calling ----------------------------------------------------------------

    def client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The address the concurrency limit counts (``X-Forwarded-For`` only from a
        trusted proxy)."""
        return self.proxies.client_address(peer, ",".join(forwarded_for) or None)

    # -- starting ----------------------------------------------------------------------

    def form(
        self,
        *,
        model_id: str | None = None,
        lora_version: str | None = None,
        enhance: bool = False,
        custom_prompt: bool | None = None,
        custom_prompt_text: str | None = None,
        marketplace: str | None = None,
    ) -> PhotoForm:
        """The seed's fields, checked (400 / 4000 for what does not fit)."""
        prompt = (custom_prompt_text or "").strip() or None
        if custom_prompt and prompt is None:
            raise InvalidParameter(
                "custom_prompt is true but custom_prompt_text is empty; send the prompt text"
            )
        if custom_prompt is False:
            # The seed's switch: the text is sent but not to be used.
            prompt = None
        if prompt is not None and len(prompt) > MAX_PROMPT:
            raise InvalidParameter(f"custom_prompt_text is over {MAX_PROMPT} characters")
        lora = (lora_version or "").strip().lower() or None
        if lora is not None and lora not in ("v1", "v2"):
            raise InvalidParameter(f"lora_version must be v1 or v2, not {lora_version!r}")
        place = (marketplace or "").strip().lower() or None
        if place is not None and place not in MARKETPLACES:
            raise InvalidParameter(
                f"marketplace must be one of {', '.join(MARKETPLACES)}, not {marketplace!r}"
            )
        return PhotoForm(
            model=self._background_model(model_id),
            lora_version=lora,
            enhance=enhance,
            prompt=prompt,
            marketplace=place,
        )

    def _background_model(self, model_id: str | None) -> str | None:
        """``modelId`` as a catalogue id: a seed id or a catalogue id of a background model;
        empty or ``auto`` is the configured default (None)."""
        wanted = (model_id or "").strip()
        if not wanted or wanted.lower() == AUTO_MODEL:
            return None
        chosen = catalogue_model_id(wanted)
        if chosen not in self.catalog.registry:
            raise InvalidParameter(f"unknown modelId {wanted!r}; see GET /models")
        kind = self.catalog.model(chosen).get("kind")
        if kind != BACKGROUND_KIND:
            raise InvalidParameter(
                f"modelId {wanted!r} is a {kind} model, not a background model; "
                "see GET /models for the models that make cut-outs"
            )
        return chosen

    def check_batch_size(self, files: int) -> None:
        if files > self.max_batch_files:
            raise InvalidParameter(
                f"at most {self.max_batch_files} files per batch; this one has {files}"
            )

    async def check(self, upload: UploadedFile, *, batch: bool = False) -> CheckedPhoto:
        """A file of the request, read (at most 10 MB) and checked by its content."""
        filename = safe_filename(upload.filename)
        try:
            data = await read_at_most(upload, MAX_FILE_BYTES)
            info = await asyncio.to_thread(check_upload, data)
        except PhotoApiError as exc:
            if batch and filename:
                exc.message = f"{filename}: {exc.message}"
            raise
        return CheckedPhoto(upload, filename, info)

    async def store(self, client: Client, photo: CheckedPhoto) -> Asset:
        """The photo's bytes in storage; returns the asset row, not yet written."""
        await photo.upload.seek(0)
        data = await read_at_most(photo.upload, MAX_FILE_BYTES)
        return await self.assets.store_bytes(
            client.id, data, filename=photo.filename, source_type=SOURCE_UPLOADED
        )

    def submission(
        self, form: PhotoForm, photos: Sequence[tuple[Asset, str | None]], *, batch: bool
    ) -> JobSubmission:
        """The job for these stored photos, validated (before any transaction opens)."""
        if batch:
            self.check_batch_size(len(photos))
        body = JobCreate(
            recipe=RECIPE,
            items=[
                {"image": {"asset_id": asset.id}, **({"filename": name} if name else {})}
                for asset, name in photos
            ],
            options=form.options(self.time_limit),
            priority=0 if batch else SINGLE_PRIORITY,
        )
        return self.jobs.prepare(body, source=SOURCE_BATCH if batch else SOURCE_SINGLE)

    async def start(
        self,
        conn: AsyncConnection,
        client: Client,
        submission: JobSubmission,
        uploads: Sequence[Asset],
    ) -> JobRow:
        """Write the uploads' rows and the job; each upload becomes part of its item."""
        await self.assets.add(conn, *uploads)
        job = (await self.jobs.create(conn, client, submission)).job
        items, _ = await self.jobs.items(conn, job)
        for item, upload in zip(items, uploads, strict=True):
            await self.assets.attach_to_item(conn, upload.id, job.id, item.id)
        return job

    # -- one photo ---------------------------------------------------------------------

    async def single_progress(
        self, conn: AsyncConnection, client: Client, processing_id: str
    ) -> SingleProgressOut:
        job, item = await self._single(conn, client, processing_id)
        return single_progress(job.id, item)

    async def single_image(
        self, conn: AsyncConnection, client: Client, processing_id: str, step: Step
    ) -> ImageBody:
        _, item = await self._single(conn, client, processing_id)
        return await self.images.body(await self._image(conn, item, step))

    async def _single(
        self, conn: AsyncConnection, client: Client, processing_id: str
    ) -> tuple[JobRow, ItemRow]:
        job = await self._job(conn, client, processing_id, SOURCE_SINGLE)
        items, _ = await self.jobs.items(conn, job, limit=1)
        if not items:
            raise PhotoNotFound(f"Не найдено: no photo {processing_id}")
        return job, items[0]

    # -- batches -----------------------------------------------------------------------

    async def batch_progress(
        self, conn: AsyncConnection, client: Client, batch_id: str
    ) -> BatchProgressOut:
        job = await self._job(conn, client, batch_id, SOURCE_BATCH)
        items, _ = await self.jobs.items(conn, job)
        return batch_progress(job.id, job, items)

    async def batch_image(
        self, conn: AsyncConnection, client: Client, batch_id: str, name: str
    ) -> ImageBody:
        job = await self._job(conn, client, batch_id, SOURCE_BATCH)
        items, _ = await self.jobs.items(conn, job)
        found = find_batch_image(name, items)
        if found is None:
            raise PhotoNotFound(
                f"Не найдено: batch {batch_id} has no image {name!r}; its names are in "
                f"/batch_progress/{batch_id}"
            )
        item, kind = found
        row = next(i for i in items if i.id == item.id)
        step: Step = "original" if kind == "original" else "final"
        return await self.images.body(await self._image(conn, row, step))

    async def batch_files(
        self, conn: AsyncConnection, client: Client, batch_id: str
    ) -> tuple[JobRow, list[tuple[str, Asset]]]:
        """The batch and the files of its ZIP: every original, and the final of every photo
        finished so far, named as ``/batch_image`` names them."""
        job = await self._job(conn, client, batch_id, SOURCE_BATCH)
        items, _ = await self.jobs.items(conn, job)
        stems = batch_file_stems(items)
        wanted: list[tuple[str, str]] = []
        for item in items:
            wanted.append((f"{stems[item.id]}_original.png", _original_id(item)))
            if item.status == ITEM_COMPLETED and (final := _result_id(item, "final")):
                wanted.append((f"{stems[item.id]}_processed.png", final))
        stored = await self.assets.get_many(conn, [asset_id for _, asset_id in wanted])
        return job, [(name, stored[a]) for name, a in wanted if a in stored]

    def archive(self, files: Iterable[tuple[str, Asset]]) -> AsyncIterator[bytes]:
        """A ZIP of ``files`` (each as PNG), streamed as it is read."""
        return self.images.archive(files)

    # -- images ------------------------------------------------------------------------

    async def _image(self, conn: AsyncConnection, item: ItemRow, step: Step) -> Asset:
        """The stored image of ``step``, or why there is none (404 not yet; the item's
        fault when it failed before making it)."""
        if step == "original":
            asset_id: str | None = _original_id(item)
        else:
            asset_id = _result_id(item, step) or await self._step_file(conn, item, step)
        if asset_id is None:
            if item.status == "failed":
                fault = (
                    AnalysisServiceError if failure_code(item) == 5001 else GenerationServiceError
                )
                raise fault(f"the {step} image was not made: {item.error or 'the photo failed'}")
            if item.status == "cancelled":
                raise PhotoNotFound(f"Не найдено: the photo was cancelled before its {step} image")
            raise PhotoNotFound(
                f"Не найдено: the {step} image is not ready yet (current_step: "
                f"{current_step(item)})"
            )
        try:
            return await self.assets.get(conn, asset_id)
        except NotFound as exc:
            raise PhotoNotFound(f"Не найдено: the {step} image is gone") from exc

    async def _step_file(self, conn: AsyncConnection, item: ItemRow, step: str) -> str | None:
        """The first file of ``step``'s stored output, while the item still runs."""
        for run in reversed(await self.items.step_runs(conn, item.id)):
            files = (run.output or {}).get("files") if run.status == STEP_SUCCEEDED else None
            if run.step == step and files:
                return str(files[0]["asset_id"])
        return None

    # -- models, health, history -------------------------------------------------------

    def models(self) -> ModelsOut:
        return models_answer(self.catalog.models(kind=BACKGROUND_KIND))

    def model(self, model_id: str) -> ModelOut:
        return model_answer(self.catalog.models(kind=BACKGROUND_KIND), model_id)

    async def health(self, db: Database) -> HealthOut:
        """``GET /health`` from real checks (``health.health_answer``)."""
        return await health_answer(db, self.catalog, self.clock.now())

    async def history(
        self, conn: AsyncConnection, client: Client, *, limit: int, batch_id: str | None
    ) -> HistoryOut:
        """The client's photos of the last ``photos_retention_days``, newest first; one
        entry per photo (a batch's photos in their order)."""
        since = self.clock.now() - timedelta(days=self.history_days)
        if batch_id is not None:
            jobs = [await self._job(conn, client, batch_id, SOURCE_BATCH)]
        else:
            found: list[JobRow] = []
            for source in SOURCES:
                rows, _ = await self.jobs.list_jobs(
                    conn, client, status=None, limit=limit, source=source
                )
                found += rows
            jobs = sorted(found, key=lambda j: (j.created_at, j.id), reverse=True)
        entries: list[HistoryEntryOut] = []
        for job in jobs:
            if len(entries) >= limit:
                break
            if job.created_at < since:
                continue
            items, _ = await self.jobs.items(conn, job, limit=limit - len(entries))
            sizes = await self._upload_sizes(conn, items)
            batch = job.source == SOURCE_BATCH
            entries += [
                history_entry(job, item, batch=batch, file_size=sizes.get(_original_id(item)))
                for item in items
            ]
        return HistoryOut(history=entries)

    async def _upload_sizes(
        self, conn: AsyncConnection, items: Sequence[ItemRow]
    ) -> dict[str, int]:
        ids = [_original_id(item) for item in items if item.output is None]
        stored = await self.assets.get_many(conn, ids)
        return {asset_id: asset.size for asset_id, asset in stored.items()}

    # -- jobs --------------------------------------------------------------------------

    async def _job(self, conn: AsyncConnection, client: Client, job_id: str, source: str) -> JobRow:
        noun = "processing_id" if source == SOURCE_SINGLE else "batch_id"
        try:
            job = await self.jobs.get(conn, client, job_id)
        except NotFound as exc:
            raise PhotoNotFound(f"Не найдено: unknown {noun} {job_id}") from exc
        if job.source != source:
            # Other APIs' jobs, and batches asked for as single photos (or the reverse),
            # are not this endpoint's to show.
            raise PhotoNotFound(f"Не найдено: unknown {noun} {job_id}")
        return job


def _original_id(item: ItemRow) -> str:
    return str(item.input["image"]["asset_id"])


def _result_id(item: ItemRow, name: str) -> str | None:
    found = (item.output or {}).get(name)
    return str(found["asset_id"]) if isinstance(found, Mapping) and found.get("asset_id") else None
