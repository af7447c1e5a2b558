"""Seed 004's progress and history answers from a job and its items (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.compat.photos.progress import (
    batch_file_stems,
    batch_progress,
    find_batch_image,
    history_entry,
    single_progress,
)

T0 = datetime(2025, 1, 8, 19, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    """The fields of an item row the seed's answers read."""

    id: str = "item-1"
    seq: int = 1
    key: str | None = "mug.jpg"
    status: str = "pending"
    stage: str | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime = T0
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Job:
    id: str = "job-1"
    status: str = "processing"
    total: int = 1
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    items: list[Item] = field(default_factory=list)


OUTPUT: dict[str, Any] = {
    "analysis": {"category": "kitchen and tableware", "description": "A red mug."},
    "original": {"asset_id": "a1", "mime_type": "image/jpeg", "size": 2048576},
    "background_model": "local/u2netp",
    "provenance": {
        "background": {
            "model": "local/u2netp",
            "fallback_from": [{"model": "fal/flux-kontext-lora-v2", "error": "no API key"}],
        }
    },
    "warnings": ["image is only 12×12 pixels; the cut-out may be poor"],
}


def flags(item: Item) -> tuple[Any, ...]:
    progress = single_progress("job-1", item)
    return (
        progress.status,
        progress.current_step,
        progress.gpt_completed,
        progress.background_processing,
        progress.background_completed,
        progress.final_processing,
        progress.final_completed,
        progress.error,
    )


def test_single_progress_follows_the_item_through_every_step() -> None:
    queued = Item()
    assert flags(queued) == ("processing", "uploading", False, False, False, False, False, None)
    analyzing = replace(queued, status="running", stage="analyzing")
    assert flags(analyzing) == ("processing", "analyzing", False, False, False, False, False, None)
    background = replace(analyzing, stage="background")
    assert flags(background) == ("processing", "background", True, True, False, False, False, None)
    final = replace(analyzing, stage="final")
    assert flags(final) == ("processing", "final", True, False, True, True, False, None)
    done = replace(final, status="completed", output=OUTPUT)
    assert flags(done) == ("completed", "completed", True, False, True, False, True, None)


def test_a_failed_item_says_why_and_how_far_it_got() -> None:
    failed = Item(status="failed", stage="background", error="step 'background' failed: ...")
    assert flags(failed) == (
        "error",
        "error",
        True,
        False,
        False,
        False,
        False,
        "step 'background' failed: ...",
    )
    cancelled = Item(status="cancelled", stage=None)
    assert flags(cancelled)[:2] == ("error", "error")
    assert flags(cancelled)[-1] == "cancelled"


def test_single_progress_names_the_images_and_the_fallbacks() -> None:
    progress = single_progress("job/1", Item(status="completed", stage="final", output=OUTPUT))
    answer = progress.model_dump()
    assert answer["original_image_url"] == "/single_image/job%2F1/original"
    assert answer["background_image_url"] == "/single_image/job%2F1/background"
    assert answer["final_image_url"] == "/single_image/job%2F1/final"
    assert answer["analysis"] == OUTPUT["analysis"]
    assert answer["background_model"] == "local/u2netp"
    assert answer["fallbacks"] == [{"model": "fal/flux-kontext-lora-v2", "error": "no API key"}]
    assert answer["warnings"] == OUTPUT["warnings"]
    # Every field of the seed's example is there.
    assert set(answer) >= {
        "status", "current_step", "gpt_completed", "background_processing",
        "background_completed", "final_processing", "final_completed", "error",
        "original_image_url", "background_image_url", "final_image_url",
    }  # fmt: skip


def batch() -> tuple[Job, list[Item]]:
    items = [
        Item("i1", 1, "mug.jpg", "completed", "final", OUTPUT),
        Item("i2", 2, "mug.png", "failed", "background", error="every model failed"),
        Item("i3", 3, "товар 1.webp", "running", "analyzing"),
        Item("i4", 4, None, "pending"),
        Item("i5", 5, "../x?.jpg", "pending"),
    ]
    return Job(total=5, completed=1, failed=1), items


def test_batch_file_names_are_safe_and_unique() -> None:
    _, items = batch()
    assert batch_file_stems(items) == {
        "i1": "mug",
        "i2": "mug_2",
        "i3": "товар_1",
        "i4": "image4",
        "i5": "x",
    }
    assert find_batch_image("mug_2_processed.png", items) == (items[1], "processed")
    assert find_batch_image("mug_original.png", items) == (items[0], "original")
    assert find_batch_image("mug_final.png", items) is None
    assert find_batch_image("../mug_original.png", items) is None


def test_batch_progress_counts_files_and_lists_those_finished() -> None:
    job, items = batch()
    progress = batch_progress("b-1", job, list(reversed(items))).model_dump()
    assert progress["batch_id"] == "b-1"
    assert (progress["total_files"], progress["processed_files"]) == (5, 2)
    assert progress["current_file"] == "товар 1.webp"
    assert progress["status"] == "processing"
    assert progress["results"] == [
        {
            "filename": "mug.jpg",
            "status": "completed",
            "original_url": "/batch_image/b-1/mug_original.png",
            "processed_url": "/batch_image/b-1/mug_processed.png",
            "error": None,
        },
        {
            "filename": "mug.png",
            "status": "error",
            "original_url": "/batch_image/b-1/mug_2_original.png",
            "processed_url": "/batch_image/b-1/mug_2_processed.png",
            "error": "every model failed",
        },
    ]
    waiting = [replace(i, status="pending", stage=None) for i in items]
    assert batch_progress("b-1", job, waiting).current_file == "mug.jpg"
    unnamed = [replace(items[3], status="running")]
    assert batch_progress("b-1", job, unnamed).current_file == "image4.png"


def test_a_finished_batch_is_completed_unless_nothing_worked() -> None:
    job, items = batch()
    finished = [replace(i, status="completed") for i in items]
    done = batch_progress("b-1", replace(job, status="completed", completed=5, failed=0), finished)
    assert (done.status, done.processed_files, done.current_file) == ("completed", 5, None)
    assert len(done.results) == 5
    broken = replace(job, status="failed", completed=0, failed=5)
    assert batch_progress("b-1", broken, items).status == "error"
    # A Cyrillic name keeps its letters, percent-encoded in the URL.
    assert done.results[2].filename == "товар 1.webp"
    assert done.results[2].original_url == (
        "/batch_image/b-1/%D1%82%D0%BE%D0%B2%D0%B0%D1%80_1_original.png"
    )


def test_history_entries_for_a_single_photo_and_a_batch_item() -> None:
    job = Job(status="completed", completed=1)
    done = Item(
        status="completed",
        stage="final",
        output=OUTPUT,
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=46.24),
    )
    single = history_entry(job, done, batch=False).model_dump(mode="json")
    assert single == {
        "id": "job-1",
        "batch_id": None,
        "filename": "mug.jpg",
        "upload_time": "2025-01-08T19:30:00Z",
        "processing_time": 45.2,
        "status": "completed",
        "file_size": 2048576,
        "analysis": {"category": "kitchen and tableware", "description": "A red mug."},
        "background_model": "local/u2netp",
        "fallbacks": [{"model": "fal/flux-kontext-lora-v2", "error": "no API key"}],
    }
    running = Item(id="i7", status="running", stage="background")
    entry = history_entry(job, running, batch=True, file_size=1234).model_dump(mode="json")
    assert (entry["id"], entry["batch_id"], entry["status"]) == ("i7", "job-1", "processing")
    assert entry["processing_time"] is None
    assert entry["file_size"] == 1234
    assert entry["analysis"] == {"category": None, "description": None}
