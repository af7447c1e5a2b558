"""Jobs, their items and the step runs of each item: tables, statuses and row types.

A job's progress counters (``completed``, ``failed``, ``cancelled``) change only together
with an item's status transition, in the same transaction, by ``UPDATE ... SET n = n + 1``
guarded on the item's previous status: concurrent finishes never lose an update and an item
is never counted twice.

A job's ``stage`` is a name its recipe declares (``Recipe.stages``): the earliest stage any
open item is in. The engine knows no stage names; compatibility APIs map them to their own
statuses (seed 000 shows ``translating``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from conveyor.core.models import JSONType, UTCDateTime, metadata

JOB_PENDING = "pending"
JOB_PROCESSING = "processing"
JOB_COMPLETED = "completed"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"
JOB_ACTIVE = (JOB_PENDING, JOB_PROCESSING)
JOB_STATUSES = (JOB_PENDING, JOB_PROCESSING, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED)

ITEM_PENDING = "pending"
ITEM_RUNNING = "running"
ITEM_COMPLETED = "completed"
ITEM_FAILED = "failed"
ITEM_CANCELLED = "cancelled"
ITEM_OPEN = (ITEM_PENDING, ITEM_RUNNING)

# A job's cost_currency when its items were charged in more than one currency.
MIXED_CURRENCIES = "mixed"

STEP_RUNNING = "running"
# A submit to a paid provider is under way (or was, when a worker died): no task id yet.
STEP_SUBMITTING = "submitting"
STEP_SUCCEEDED = "succeeded"
STEP_FAILED = "failed"
STEP_CANCELLED = "cancelled"

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("recipe", String(64), nullable=False),
    Column("model", String(128), nullable=True),
    Column("status", String(16), nullable=False),
    Column("stage", String(32), nullable=True),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("options", JSONType, nullable=False),
    Column("languages", JSONType, nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("webhook_url", Text, nullable=True),
    Column("total", Integer, nullable=False),
    Column("completed", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("cancelled", Integer, nullable=False, server_default="0"),
    Column("cost", Float, nullable=False, server_default="0"),
    # What ``cost`` is in (None: nothing charged yet; MIXED_CURRENCIES: no one total), and
    # how many calls had no known price: while any did, the cost shown is unknown (null).
    Column("cost_currency", String(8), nullable=True),
    Column("unpriced_calls", Integer, nullable=False, server_default="0"),
    Column("error_message", Text, nullable=True),
    # Which API created it ("v1", "descriptions", ...): compatibility APIs list their own.
    Column("source", String(32), nullable=False, server_default="v1"),
    Column("simulated", Boolean, nullable=False, server_default=false()),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("client_id", "idempotency_key", name="uq_jobs_client_idempotency"),
    Index("ix_jobs_client_created", "client_id", "created_at", "id"),
    Index("ix_jobs_status", "status"),
    Index("ix_jobs_finished", "finished_at"),
)

items = Table(
    "items",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    # The client's own name for the item: a lot_id, a word, a file name.
    Column("key", String(200), nullable=True),
    Column("status", String(16), nullable=False),
    Column("stage", String(32), nullable=True),
    Column("input", JSONType, nullable=False),
    Column("output", JSONType, nullable=True),
    Column("error", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("model_used", String(128), nullable=True),
    Column("cost", Float, nullable=False, server_default="0"),
    Column("cost_currency", String(8), nullable=True),
    Column("unpriced_calls", Integer, nullable=False, server_default="0"),
    Column("runs", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_items_job_seq", "job_id", "seq"),
    Index("ix_items_job_status", "job_id", "status"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("item_id", String(36), ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(64), nullable=False),
    Column("model_id", String(128), nullable=False),
    Column("chain_index", Integer, nullable=False),
    # Which run of the item this belongs to (``items.runs``): a retried item starts a new
    # run, so models that failed before are tried again, while finished steps are reused.
    Column("item_run", Integer, nullable=False),
    # For failed rows: whether the failure was transient (worth another try later).
    Column("retryable", Boolean, nullable=False, server_default=false()),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("external_task_id", String(200), nullable=True),
    Column("provider_state", JSONType, nullable=True),
    Column("output", JSONType, nullable=True),
    Column("error", Text, nullable=True),
    Column("cost", Float, nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    # What the step made, as a key of its client's work (recipe key hashed with the client):
    # a later step with the same key may take this one's output instead of calling a model.
    Column("reuse_key", String(64), nullable=True),
    Index("ix_step_runs_item", "item_id", "step"),
    Index("ix_step_runs_reuse_key", "reuse_key"),
)


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    client_id: str
    recipe: str
    model: str | None
    status: str
    stage: str | None
    priority: int
    options: dict[str, Any]
    languages: list[str] | None
    idempotency_key: str | None
    webhook_url: str | None
    total: int
    completed: int
    failed: int
    cancelled: int
    cost: float
    error_message: str | None
    source: str
    simulated: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cost_currency: str | None = None
    unpriced_calls: int = 0

    @property
    def finished(self) -> bool:
        return self.status not in JOB_ACTIVE


@dataclass(frozen=True, slots=True)
class ItemRow:
    id: str
    job_id: str
    seq: int
    key: str | None
    status: str
    stage: str | None
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None
    error_code: str | None
    model_used: str | None
    cost: float
    runs: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cost_currency: str | None = None
    unpriced_calls: int = 0


@dataclass(frozen=True, slots=True)
class StepRunRow:
    id: str
    item_id: str
    step: str
    model_id: str
    chain_index: int
    item_run: int
    attempt: int
    status: str
    retryable: bool
    external_task_id: str | None
    provider_state: dict[str, Any] | None
    output: dict[str, Any] | None
    error: str | None
    cost: float | None
    started_at: datetime
    finished_at: datetime | None
    reuse_key: str | None
