"""Seed 004's progress and history answers, as pure functions of a job and its items.

A ``product-photo`` item says where it is with its status and stage (``analyzing``,
``background``, ``final``, in that order) and, once finished, its result. The seed's words
follow from those alone:

=====================  ===============  ==================================================
item                   ``status``       ``current_step``
=====================  ===============  ==================================================
pending, no stage      processing       uploading (accepted, not started: nothing done yet)
running, stage S       processing       S
completed              completed        completed
failed / cancelled     error            error
=====================  ===============  ==================================================

A stage is done once a later one has begun (``gpt_completed`` from ``background`` on, even
when the analysis was switched off or failed and the photo went on without it). A failed
item keeps the stage it failed in, so its flags still say how far it got.

Images are named as the seed names them: ``/single_image/{id}/{original|background|final}``
for one photo; in a batch ``/batch_image/{batch_id}/{stem}_original.png`` and
``{stem}_processed.png``, where ``stem`` is the file's name without its extension, made
safe and unique within the batch (``batch_file_stems``; ``find_batch_image`` reads a name
back). The functions take any object with the job's or item's fields (``JobView``,
``ItemView``): the rows of ``jobs`` or their API models alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote

from conveyor.compat.photos.schemas import (
    BatchProgressOut,
    BatchResultOut,
    Fallback,
    HistoryAnalysis,
    HistoryEntryOut,
    SeedStatus,
    SeedStep,
    SingleProgressOut,
)

STAGES = ("analyzing", "background", "final")
ImageKind = Literal["original", "processed"]
_OPEN = ("pending", "running")
_FAILED = ("failed", "cancelled")
_STEM_UNSAFE = re.compile(r"[^\w-]+")
MAX_STEM = 100


class ItemView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def key(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def stage(self) -> str | None: ...
    @property
    def output(self) -> dict[str, Any] | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...


class JobView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def total(self) -> int: ...
    @property
    def completed(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def cancelled(self) -> int: ...


def seed_status(item_status: str) -> SeedStatus:
    if item_status in _OPEN:
        return "processing"
    return "completed" if item_status == "completed" else "error"


def current_step(item: ItemView) -> SeedStep:
    if item.status == "completed":
        return "completed"
    if item.status in _FAILED:
        return "error"
    stage = item.stage
    if stage == "analyzing":
        return "analyzing"
    if stage == "background":
        return "background"
    if stage == "final":
        return "final"
    return "uploading"


def item_error(item: ItemView) -> str | None:
    """The reason a finished item is in ``error``; ``None`` otherwise."""
    if item.status == "cancelled":
        return item.error or "cancelled"
    if item.status == "failed":
        return item.error or "failed"
    return None


def failure_code(item: ItemView) -> int | None:
    """The seed's number for why a failed item failed: 5001 in the analysis, 5002 making
    the cut-out or the final (the seed's "fal.ai" fault), 5000 before either began."""
    if item.status != "failed":
        return None
    if item.stage == "analyzing":
        return 5001
    return 5002 if item.stage in ("background", "final") else 5000


def single_progress(processing_id: str, item: ItemView) -> SingleProgressOut:
    """``GET /single_progress/{processing_id}`` for the item of a one-photo job."""
    step = current_step(item)
    done = item.status == "completed"
    reached = STAGES.index(item.stage) if item.stage in STAGES else -1
    output = item.output or {}
    base = f"/single_image/{quote(processing_id, safe='')}"
    return SingleProgressOut(
        status=seed_status(item.status),
        current_step=step,
        gpt_completed=done or reached > 0,
        background_processing=step == "background",
        background_completed=done or reached > 1,
        final_processing=step == "final",
        final_completed=done,
        error=item_error(item),
        error_code=failure_code(item),
        original_image_url=f"{base}/original",
        background_image_url=f"{base}/background",
        final_image_url=f"{base}/final",
        analysis=output.get("analysis") if isinstance(output.get("analysis"), dict) else None,
        background_model=_text(output.get("background_model")),
        fallbacks=fallbacks_of(output),
        warnings=[str(w) for w in output.get("warnings") or []],
    )


def fallbacks_of(output: Mapping[str, Any]) -> list[Fallback]:
    """Why the background models before the one that made the cut-out did not."""
    provenance = output.get("provenance")
    background = provenance.get("background") if isinstance(provenance, Mapping) else None
    tried = background.get("fallback_from") if isinstance(background, Mapping) else None
    return [
        Fallback(model=str(t.get("model")), error=str(t.get("error")))
        for t in tried or []
        if isinstance(t, Mapping)
    ]


def batch_file_stems(items: Sequence[ItemView]) -> dict[str, str]:
    """Item id → its file name stem, unique within the batch (``mug``, ``mug_2``...)."""
    stems: dict[str, str] = {}
    taken: set[str] = set()
    for item in sorted(items, key=lambda i: i.seq):
        stem = _stem(item.key) or f"image{item.seq}"
        unique, number = stem, 1
        while unique.lower() in taken:
            number += 1
            unique = f"{stem}_{number}"
        taken.add(unique.lower())
        stems[item.id] = unique
    return stems


def batch_image_url(batch_id: str, stem: str, kind: ImageKind) -> str:
    return f"/batch_image/{quote(batch_id, safe='')}/{quote(f'{stem}_{kind}.png', safe='')}"


def find_batch_image(name: str, items: Sequence[ItemView]) -> tuple[ItemView, ImageKind] | None:
    """The item and image a ``/batch_image/{batch_id}/{name}`` name stands for, if any."""
    stems = batch_file_stems(items)
    for item in items:
        for kind in ("original", "processed"):
            if name == f"{stems[item.id]}_{kind}.png":
                return item, kind
    return None


def batch_progress(batch_id: str, job: JobView, items: Sequence[ItemView]) -> BatchProgressOut:
    """``GET /batch_progress/{batch_id}``: ``results`` lists the files finished so far."""
    stems = batch_file_stems(items)
    ordered = sorted(items, key=lambda i: i.seq)
    results = [
        BatchResultOut(
            filename=item.key or f"{stems[item.id]}.png",
            status=seed_status(item.status),
            original_url=batch_image_url(batch_id, stems[item.id], "original"),
            processed_url=batch_image_url(batch_id, stems[item.id], "processed"),
            error=item_error(item),
        )
        for item in ordered
        if item.status not in _OPEN
    ]
    running = [i for i in ordered if i.status == "running"] or [
        i for i in ordered if i.status == "pending"
    ]
    current = running[0] if running else None
    status: SeedStatus = "processing"
    if job.status not in ("pending", "processing"):
        status = "completed" if job.completed > 0 else "error"
    return BatchProgressOut(
        batch_id=batch_id,
        total_files=job.total,
        processed_files=job.completed + job.failed + job.cancelled,
        current_file=(current.key or f"{stems[current.id]}.png") if current else None,
        status=status,
        results=results,
    )


def history_entry(
    job: JobView, item: ItemView, *, batch: bool, file_size: int | None = None
) -> HistoryEntryOut:
    """One ``GET /history`` entry: an item of a batch (``id`` is the item's), or the one
    photo of a ``/process_single`` job (``id`` is its ``processing_id``, the job's)."""
    output = item.output or {}
    original = output.get("original")
    if isinstance(original, Mapping) and isinstance(original.get("size"), int):
        file_size = original["size"]
    found = output.get("analysis")
    analysis: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    elapsed = None
    if item.started_at is not None and item.finished_at is not None:
        elapsed = round((item.finished_at - item.started_at).total_seconds(), 1)
    return HistoryEntryOut(
        id=item.id if batch else job.id,
        batch_id=job.id if batch else None,
        filename=item.key,
        upload_time=item.created_at,
        processing_time=elapsed,
        status=seed_status(item.status),
        file_size=file_size,
        analysis=HistoryAnalysis(
            category=_text(analysis.get("category")),
            description=_text(analysis.get("description")),
        ),
        background_model=_text(output.get("background_model")),
        fallbacks=fallbacks_of(output),
    )


def _stem(filename: str | None) -> str:
    if not filename:
        return ""
    base = filename.rsplit(".", 1)[0] if "." in filename.lstrip(".") else filename
    return _STEM_UNSAFE.sub("_", base).strip("_")[:MAX_STEM]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
