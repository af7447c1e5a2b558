"""What the native API accepts and returns for jobs."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from conveyor.errors import BadRequest
from conveyor.jobs.models import MIXED_CURRENCIES, ItemRow, JobRow
from conveyor.providers.base import DEFAULT_CURRENCY

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
ItemStatus = Literal["pending", "running", "completed", "failed", "cancelled"]


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "recipe": "image-finish",
                    "items": [{"image": {"asset_id": "3f1c..."}}],
                    "options": {"preset": "ozon", "format": "jpeg"},
                }
            ]
        },
    )

    recipe: str | None = Field(None, min_length=1, max_length=64, description="Recipe name")
    model: str | None = Field(
        None, min_length=1, max_length=128, description="Run one catalogue model per item"
    )
    items: list[Any] = Field(..., min_length=1, description="One entry per unit of work")
    options: dict[str, Any] = Field(default_factory=dict)
    languages: list[str] | None = Field(None, max_length=100)
    priority: int = Field(0, ge=-100, le=100)
    webhook_url: str | None = Field(None, max_length=2048, pattern=r"^https?://")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    wait: float | None = Field(
        None, ge=0, le=300, description="Seconds to wait for the job to finish in this call"
    )
    dry_run: bool = Field(
        False, description="Only check the job and estimate its cost (200); nothing is created"
    )

    @model_validator(mode="after")
    def _recipe_or_model(self) -> JobCreate:
        if (self.recipe is None) == (self.model is None):
            raise ValueError("give exactly one of 'recipe' or 'model'")
        return self


class Progress(BaseModel):
    total: int
    completed: int
    failed: int
    cancelled: int
    pending: int
    percent: float


# How many of the most common reasons an ``error_summary`` lists.
REASONS_SHOWN = 5


class ErrorReason(BaseModel):
    code: str | None
    message: str
    count: int = Field(description="How many items failed with this error")


class ErrorSummary(BaseModel):
    """Failed items at a glance: how many, and the most common reasons (most first)."""

    message: str = Field(description="One line, e.g. '2 of 10 items failed: ...'")
    failed: int
    cancelled: int
    total: int
    reasons: list[ErrorReason]


def error_summary(job: JobRow, reasons: list[ErrorReason] | None) -> ErrorSummary | None:
    """The job's ``error_summary``: None unless some item failed."""
    if job.failed <= 0:
        return None
    reasons = reasons or []
    message = f"{job.failed} of {job.total} item(s) failed"
    if reasons:
        message += ": " + "; ".join(f"{r.message} ({r.count})" for r in reasons[:3])
    return ErrorSummary(
        message=message,
        failed=job.failed,
        cancelled=job.cancelled,
        total=job.total,
        reasons=reasons,
    )


def shown_cost(cost: float, currency: str | None, unpriced: int) -> tuple[float | None, str | None]:
    """``cost`` and ``cost_currency`` as the API shows them: null when any call's price is
    unknown or the charges are in several currencies (no honest total); a cost with nothing
    charged is 0.0 in the default currency."""
    if unpriced > 0 or currency == MIXED_CURRENCIES:
        return None, None
    return round(cost, 6), currency or DEFAULT_CURRENCY


class JobOut(BaseModel):
    id: str
    status: JobStatus
    recipe: str
    model: str | None
    stage: str | None
    priority: int
    options: dict[str, Any]
    languages: list[str] | None
    progress: Progress
    cost: float | None = Field(
        description="What the job was charged; null when a call's price is unknown"
    )
    cost_currency: str | None = Field(description="The currency of `cost` (ISO 4217)")
    error_message: str | None
    error_summary: ErrorSummary | None = Field(
        None, description="Set when items failed: counts and the most common reasons"
    )
    idempotency_key: str | None
    webhook_url: str | None
    simulated: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, job: JobRow, reasons: list[ErrorReason] | None = None) -> JobOut:
        """The job; ``reasons``: its failed items' errors, most common first."""
        done = job.completed + job.failed + job.cancelled
        cost, currency = shown_cost(job.cost, job.cost_currency, job.unpriced_calls)
        return cls(
            id=job.id,
            status=job.status,
            recipe=job.recipe,
            model=job.model,
            stage=job.stage,
            priority=job.priority,
            options=job.options,
            languages=job.languages,
            progress=Progress(
                total=job.total,
                completed=job.completed,
                failed=job.failed,
                cancelled=job.cancelled,
                pending=max(0, job.total - done),
                percent=round(100.0 * done / job.total, 1) if job.total else 100.0,
            ),
            cost=cost,
            cost_currency=currency,
            error_message=job.error_message,
            error_summary=error_summary(job, reasons),
            idempotency_key=job.idempotency_key,
            webhook_url=job.webhook_url,
            simulated=job.simulated,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class ItemOut(BaseModel):
    id: str
    seq: int
    key: str | None
    status: ItemStatus
    stage: str | None
    output: dict[str, Any] | None
    error: str | None
    error_code: str | None
    model_used: str | None
    cost: float | None
    cost_currency: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, item: ItemRow) -> ItemOut:
        cost, currency = shown_cost(item.cost, item.cost_currency, item.unpriced_calls)
        return cls(
            id=item.id,
            seq=item.seq,
            key=item.key,
            status=item.status,
            stage=item.stage,
            output=item.output,
            error=item.error,
            error_code=item.error_code,
            model_used=item.model_used,
            cost=cost,
            cost_currency=currency,
            created_at=item.created_at,
            started_at=item.started_at,
            finished_at=item.finished_at,
        )


def progress_event(job: JobRow) -> dict[str, Any]:
    """A ``job.progress`` event: the job's status and its ``Progress`` as the API shows it."""
    return {"status": job.status, **JobOut.from_row(job).progress.model_dump()}


class JobPage(BaseModel):
    data: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class ItemPage(BaseModel):
    data: list[ItemOut]
    next_cursor: str | None = None


class JobResults(BaseModel):
    job: JobOut
    items: list[ItemOut]


class JobWithItems(JobOut):
    """A job created with ``wait``: the job, and every item with its result (each output
    file with a ``url`` to download it)."""

    items: list[ItemOut] | None = Field(
        None, description="Every item with its output; set when the request waited"
    )


class RetryOut(BaseModel):
    job: JobOut
    retried: int


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """A cursor we issued; anything else is a 400, never a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: a made-up cursor nested a thousand levels deep.
        raise BadRequest("invalid cursor", code="INVALID_CURSOR") from exc
    if not isinstance(value, dict):
        raise BadRequest("invalid cursor", code="INVALID_CURSOR")
    return value
