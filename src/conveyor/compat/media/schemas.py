"""What the seed-002 media API accepts and answers, checked and shaped here.

Bodies are read by hand, as Django REST framework would read them: unknown fields are
ignored (the seed's front end sends whatever its word objects hold), ``null`` means "not
given", and every mistake comes back in one 400 whose ``details`` are keyed like DRF's
serializer errors, a word by its index: ``{"words": {"3": {"word": ["..."]}}}``. The
``*Out`` models are the answers (and their OpenAPI schemas).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, Field, ValidationError

from conveyor.errors import BadRequest
from conveyor.jobs.models import ITEM_OPEN, ITEM_PENDING, ItemRow, JobRow
from conveyor.recipes.word_media import MEDIA, WordItem, partial_media

# Fields of a word entry; anything else a client sends along is ignored.
WORD_FIELDS = ("word", "language", "generate_image", "generate_audio", "image_prompt", "voice")
# Bad words listed in one answer; ``message`` says how many there were in all.
MAX_LISTED = 100

Kind = Literal["image", "audio"]
TaskStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
WordStatus = Literal["pending", "processing", "completed", "partial", "failed", "cancelled"]
Errors = dict[str, Any]


class InvalidMediaRequest(BadRequest):
    code = "VALIDATION_ERROR"


@dataclass(frozen=True, slots=True)
class MediaRequest:
    """A checked request: the words as the recipe takes them, and the job option."""

    words: list[WordItem]
    skip_existing: bool


def read_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMediaRequest(
            f"JSON parse error: {exc}", code="PARSE_ERROR", details={"detail": [str(exc)]}
        ) from exc
    if not isinstance(body, dict):
        raise InvalidMediaRequest(
            "the body must be a JSON object",
            details={"non_field_errors": ["Invalid data. Expected a dictionary."]},
        )
    return body


def refuse(errors: Errors, summary: str | None = None) -> InvalidMediaRequest:
    """One 400 carrying every problem, DRF-shaped; the message names the first."""
    field, problem = _first(errors)
    message = f"{field}: {problem}" if field else problem
    return InvalidMediaRequest(f"{summary}; {message}" if summary else message, details=errors)


def _first(errors: Mapping[str, Any], prefix: str = "") -> tuple[str, str]:
    key, value = next(iter(errors.items()))
    if key == "non_field_errors":
        here = prefix
    elif key.isdigit():
        here = f"{prefix}[{key}]"
    else:
        here = f"{prefix}.{key}" if prefix else key
    if isinstance(value, Mapping):
        return _first(value, here)
    return here, str(value[0]) if isinstance(value, list) and value else str(value)


def _boolean(body: Mapping[str, Any], name: str, errors: Errors, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    errors[name] = ["Must be a valid boolean."]
    return default


def parse_word(entry: object) -> tuple[WordItem | None, Errors]:
    """One word entry as the recipe takes it, or its errors by field."""
    if not isinstance(entry, dict):
        return None, {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    given = {name: entry[name] for name in WORD_FIELDS if entry.get(name) is not None}
    if "word" not in given:
        return None, {"word": ["This field is required."]}
    try:
        return WordItem.model_validate(given), {}
    except ValidationError as exc:
        return None, _field_errors(exc)


def _field_errors(exc: ValidationError) -> Errors:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        location = error.get("loc") or ()
        field = str(location[0]) if location else "non_field_errors"
        message = str(error.get("msg", "invalid"))
        errors.setdefault(field, []).append(message.removeprefix("Value error, "))
    return cast(Errors, errors)


def parse_batch(body: Mapping[str, Any], max_words: int) -> MediaRequest:
    """``{words: [...], skip_existing?}``; every problem of every word in one 400."""
    errors: Errors = {}
    words = body.get("words")
    parsed: list[WordItem] = []
    bad: dict[str, Errors] = {}
    if words is None:
        errors["words"] = ["This field is required."]
    elif not isinstance(words, list):
        errors["words"] = [f'Expected a list of items but got type "{type(words).__name__}".']
    elif not words:
        errors["words"] = ["This list may not be empty."]
    elif len(words) > max_words:
        errors["words"] = [f"Ensure this field has no more than {max_words} elements."]
    else:
        for index, entry in enumerate(words):
            item, problems = parse_word(entry)
            if item is None:
                bad[str(index)] = problems
            else:
                parsed.append(item)
        if bad:
            errors["words"] = dict(list(bad.items())[:MAX_LISTED])
    skip_existing = _boolean(body, "skip_existing", errors)
    if errors:
        many = f"{len(bad)} of {len(bad) + len(parsed)} words are invalid" if len(bad) > 1 else None
        raise refuse(errors, many)
    return MediaRequest(parsed, skip_existing)


def parse_single(body: Mapping[str, Any], kind: Kind) -> MediaRequest:
    """``generate-image`` ``{word, language?, prompt?}`` or ``generate-audio`` ``{word,
    language?, voice?}``: a batch of one word and one medium."""
    errors: Errors = {}
    skip_existing = _boolean(body, "skip_existing", errors)
    entry: dict[str, Any] = {
        "word": body.get("word"),
        "language": body.get("language"),
        "generate_image": kind == "image",
        "generate_audio": kind == "audio",
    }
    if kind == "image":
        entry["image_prompt"] = body.get("prompt")
    else:
        entry["voice"] = body.get("voice")
    item, problems = parse_word(entry)
    errors.update({"prompt" if k == "image_prompt" else k: v for k, v in problems.items()})
    if errors or item is None:
        raise refuse(errors)
    return MediaRequest([item], skip_existing)


# -- answers -----------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """DRF's timestamps: ISO 8601 in UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def progress_percent(total: int, settled: int) -> int:
    """Words that have been through the pipeline, in whole percent: ``settled`` counts the
    words that ended at least once (``JobService.settled``), so a retry never moves a
    task's progress back; it reaches 100 only when every word has ended."""
    return 100 if total == 0 else min(100, 100 * settled // total)


class AcceptedOut(BaseModel):
    task_id: str
    status: TaskStatus
    progress: int = Field(..., ge=0, le=100)


class MediaFileOut(BaseModel):
    """One word's medium, made within the call."""

    word: str
    language: str
    kind: Kind
    status: Literal["completed"] = "completed"
    url: str = Field(..., description="Signed link to the file; loads in <img>/<audio>")
    asset_id: str
    model: str | None
    reused: bool
    mime_type: str


class MediumOut(BaseModel):
    """One medium of a word (its URL is the word's ``image_url``/``audio_url``)."""

    status: Literal["completed", "failed"]
    asset_id: str | None = None
    model: str | None = None
    reused: bool | None = None
    mime_type: str | None = None
    error: str | None = None
    fallback_from: list[str] | None = Field(None, description="Why earlier models failed")


class WordResultOut(BaseModel):
    word: str
    language: str
    status: WordStatus
    image_url: str | None = None
    audio_url: str | None = None
    error: str | None = Field(None, description="Why the word, or one of its media, failed")
    reused: bool | None = Field(None, description="Every medium came from an earlier one")
    media: dict[str, MediumOut] | None = None


class TaskSummaryOut(BaseModel):
    task_id: str
    status: TaskStatus
    progress: int = Field(..., ge=0, le=100, description="Words settled; never goes back")
    total_words: int
    completed_words: int = Field(..., description="Words with at least one medium made")
    failed_words: int = Field(..., description="Words with no medium made")
    cancelled_words: int
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, job: JobRow, settled: int) -> TaskSummaryOut:
        """The task as its job row counts it; ``settled``: words that ended at least once."""
        return cls(
            task_id=job.id,
            status=cast(TaskStatus, job.status),
            progress=progress_percent(job.total, settled),
            total_words=job.total,
            completed_words=job.completed,
            failed_words=job.failed,
            cancelled_words=job.cancelled,
            created_at=iso(job.created_at),
            updated_at=iso(job.updated_at),
        )


class TaskOut(TaskSummaryOut):
    partial_words: int = Field(..., description="Completed words one medium of which failed")
    results: list[WordResultOut]


class TaskPageOut(BaseModel):
    next: str | None
    previous: str | None
    results: list[TaskSummaryOut]


class RetriedOut(TaskOut):
    retried_words: int


def word_status(item: ItemRow) -> WordStatus:
    if item.status == ITEM_PENDING:
        return "pending"
    if item.status == "running":
        return "processing"
    if item.status == "completed":
        return "partial" if partial_media(item.output) else "completed"
    return cast(WordStatus, item.status)


def word_result(item: ItemRow, link: Callable[[str], str]) -> dict[str, Any]:
    """One word of a task as the API shows it (``WordResultOut``'s shape, absent fields
    left out); ``link`` makes a file's URL. Plain dicts: a task of thousands of words is
    read every 2 s by every front end that follows it."""
    status = word_status(item)
    result: dict[str, Any] = {
        "word": item.key or str(item.input.get("word", "")),
        "language": str(item.input.get("language", "en")),
        "status": status,
    }
    if status == "failed":
        result["error"] = item.error
    if status not in ("completed", "partial"):
        return result
    output = item.output or {}
    media: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    reused: list[bool] = []
    for medium in MEDIA:
        made = output.get(medium)
        if made is None:
            continue
        if made.get("status") != "completed":
            media[medium] = {"status": "failed", "error": made.get("error")}
            failures.append(f"{medium}: {made.get('error')}")
            continue
        result[f"{medium}_url"] = link(made["asset_id"])
        reused.append(bool(made.get("reused")))
        media[medium] = {
            "status": "completed",
            "asset_id": made["asset_id"],
            "model": made.get("model"),
            "reused": reused[-1],
            "mime_type": made.get("mime_type"),
        }
        if fallbacks := _fallbacks(made, output.get("provenance") or {}):
            media[medium]["fallback_from"] = fallbacks
    if failures:
        result["error"] = "; ".join(failures)
    result["reused"] = bool(reused) and all(reused)
    result["media"] = media
    return result


def _fallbacks(made: dict[str, Any], provenance: dict[str, Any]) -> list[str]:
    """Why the models before the one that made a medium failed: earlier steps (the recipe's
    note), then earlier models of the step that made it (the engine's provenance)."""
    step = (provenance.get(str(made.get("step"))) or {}).get("fallback_from") or []
    return [*made.get("fallback_from", []), *(f"{t['model']}: {t['error']}" for t in step)]


def task_answer(
    job: JobRow, items: list[ItemRow], link: Callable[[str], str], **extra: Any
) -> dict[str, Any]:
    """The whole task (``TaskOut``). Counters and progress come from the items read in one
    statement, so they agree with the results shown next to them and progress never goes
    back."""
    results = [word_result(item, link) for item in items]
    settled = sum(1 for i in items if i.status not in ITEM_OPEN or i.runs > 0)
    statuses = Counter(r["status"] for r in results)
    summary = TaskSummaryOut.from_row(job, settled).model_dump()
    summary.update(
        completed_words=statuses["completed"] + statuses["partial"],
        failed_words=statuses["failed"],
        cancelled_words=statuses["cancelled"],
    )
    return {**summary, "partial_words": statuses["partial"], "results": results, **extra}
