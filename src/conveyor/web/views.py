"""What the console's templates show, read off job and item rows.

Pure functions, no I/O: which files an item started from (its input's ``asset_id``
references: the *before*), which files it produced (its output's: the *after*), which model
made each step's result and which models were tried before it (``output.provenance``), and
an item's error said in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.assets.models import Asset
from conveyor.jobs.models import ItemRow, JobRow
from conveyor.jobs.schemas import JobOut, Progress

# Output keys that name the engine's bookkeeping, not result files.
_BOOKKEEPING = frozenset({"provenance", "warnings"})
# How each error code the engine records reads to a person.
_ERROR_WORDS = {
    "STEP_FAILED": "Every model that could do this step failed.",
    "ATTEMPTS_EXHAUSTED": "It kept failing for reasons that usually pass, and was given up.",
    "URL_REFUSED": "An input address may not be fetched from this server.",
    "FETCH_TOO_LARGE": "An input file is larger than this server accepts.",
    "FETCH_FAILED": "An input file could not be downloaded.",
    "UNEXPECTED_CONTENT_TYPE": "An input file is not of a type this work accepts.",
    "NOT_AN_IMAGE": "An input that must be an image is not one.",
    "MODEL_UNAVAILABLE": "The model is not available on this server.",
    "PROVIDER_FAILED": "The provider refused or failed the work.",
}
_MAX_FILES_SHOWN = 12


@dataclass(frozen=True, slots=True)
class FileView:
    """One stored file an item refers to; ``label`` says its role (``image``, ``final``)."""

    asset_id: str
    label: str
    mime_type: str | None = None
    filename: str | None = None

    @property
    def is_image(self) -> bool:
        return (self.mime_type or "").startswith("image/")


@dataclass(frozen=True, slots=True)
class StepView:
    step: str
    model: str | None
    fallbacks: list[tuple[str, str]]  # (model, why it did not make the result)


@dataclass(frozen=True, slots=True)
class ItemView:
    item: ItemRow
    before: list[FileView]
    after: list[FileView]
    steps: list[StepView]
    warnings: list[str]
    text: str | None
    error_words: str | None

    @property
    def name(self) -> str:
        return self.item.key or f"item {self.item.seq + 1}"


@dataclass(frozen=True, slots=True)
class JobView:
    job: JobRow
    title: str
    progress: Progress
    items: list[ItemView] = field(default_factory=list)
    next_items: str | None = None

    @property
    def active(self) -> bool:
        return not self.job.finished

    @property
    def can_retry(self) -> bool:
        return self.job.failed > 0 or (self.job.finished and self.job.cancelled > 0)

    @property
    def stage_text(self) -> str:
        return self.job.stage or ""


@dataclass(frozen=True, slots=True)
class Badge:
    """A running batch as the small badge on every page shows it: "Generation 45/100"."""

    job_id: str
    title: str
    done: int
    total: int
    percent: float


def progress_of(job: JobRow) -> Progress:
    return JobOut.from_row(job).progress


def badge_of(job: JobRow, title: str) -> Badge:
    progress = progress_of(job)
    done = progress.completed + progress.failed + progress.cancelled
    return Badge(job.id, title, done, progress.total, progress.percent)


def file_refs(value: Any, label: str = "file") -> list[FileView]:
    """Every ``{"asset_id": ...}`` inside a JSON value, labelled by the key that holds it."""
    found: list[FileView] = []

    def walk(node: Any, name: str) -> None:
        if len(found) >= _MAX_FILES_SHOWN:
            return
        if isinstance(node, dict):
            asset_id = node.get("asset_id")
            if isinstance(asset_id, str) and asset_id:
                mime = node.get("mime_type")
                found.append(FileView(asset_id, name, mime if isinstance(mime, str) else None))
                return
            for key, child in node.items():
                if key not in _BOOKKEEPING:
                    # ``files`` is the engine's list of a step's results: say "result".
                    walk(child, label if key == "files" else str(key))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{name} {index + 1}" if len(node) > 1 else name)

    walk(value, label)
    unique: dict[str, FileView] = {}
    for ref in found:
        unique.setdefault(ref.asset_id, ref)
    return list(unique.values())


def with_assets(refs: list[FileView], assets: dict[str, Asset]) -> list[FileView]:
    """The references whose asset still exists, with the stored MIME type and file name."""
    shown = []
    for ref in refs:
        asset = assets.get(ref.asset_id)
        if asset is not None:
            shown.append(FileView(ref.asset_id, ref.label, asset.mime_type, asset.filename))
    return shown


def steps_of(output: dict[str, Any] | None) -> list[StepView]:
    provenance = (output or {}).get("provenance")
    if not isinstance(provenance, dict):
        return []
    steps = []
    for step, record in provenance.items():
        if not isinstance(record, dict):
            continue
        tried = record.get("fallback_from") or []
        fallbacks = [
            (str(t.get("model")), str(t.get("error") or "failed"))
            for t in tried
            if isinstance(t, dict)
        ]
        model = record.get("model")
        steps.append(StepView(str(step), str(model) if model else None, fallbacks))
    return steps


def error_words(item: ItemRow) -> str | None:
    """The item's error as a sentence for people, followed by what the engine recorded."""
    if not item.error and not item.error_code:
        return None
    lead = _ERROR_WORDS.get(item.error_code or "")
    detail = item.error or ""
    return f"{lead} {detail}".strip() if lead else detail or (item.error_code or "failed")


def item_view(item: ItemRow, assets: dict[str, Asset]) -> ItemView:
    output = item.output or {}
    text = output.get("text")
    warnings = output.get("warnings")
    return ItemView(
        item=item,
        before=with_assets(file_refs(item.input, "input"), assets),
        after=with_assets(file_refs(output, "result"), assets),
        steps=steps_of(output),
        warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [],
        text=str(text) if isinstance(text, str) else None,
        error_words=error_words(item),
    )


def asset_ids_of(items: list[ItemRow]) -> list[str]:
    """Every asset the items refer to (inputs and results), for one lookup."""
    ids: set[str] = set()
    for item in items:
        ids.update(ref.asset_id for ref in file_refs(item.input))
        ids.update(ref.asset_id for ref in file_refs(item.output or {}))
    return sorted(ids)
