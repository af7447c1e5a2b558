"""Tables of the generic work queue (tasks, worker registrations, leases) and its rows.

Times here are float seconds since the epoch written with the database's clock, so the
lease arithmetic of workers on different machines agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text, text

from conveyor.core.models import JSONType, metadata

TASK_QUEUED = "queued"
TASK_RUNNING = "running"
TASK_DEAD = "dead"

queue_tasks = Table(
    "queue_tasks",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("handler", String(100), nullable=False),
    Column("payload", JSONType, nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),
    Column("run_after", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False),
    # Bumped by every claim; a worker's writes are fenced on the value it claimed.
    Column("claims", Integer, nullable=False, server_default="0"),
    Column("worker_id", String(64), nullable=True),
    # Lets a domain act on all tasks of one thing at once (e.g. cancel a job's tasks).
    Column("group_key", String(64), nullable=True),
    # Who the work is for (a client): a worker never lets one key take its last free slots.
    Column("fair_key", String(64), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("claimed_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index(
        "ix_queue_tasks_due",
        text("priority DESC"),
        "id",
        postgresql_where=text("status = 'queued'"),
        sqlite_where=text("status = 'queued'"),
    ),
    Index(
        "ix_queue_tasks_running",
        "worker_id",
        postgresql_where=text("status = 'running'"),
        sqlite_where=text("status = 'running'"),
    ),
    Index("ix_queue_tasks_group", "group_key"),
    Index("ix_queue_tasks_status", "status"),
)

queue_workers = Table(
    "queue_workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("in_flight", Integer, nullable=False, server_default="0"),
    Index("ix_queue_workers_heartbeat", "heartbeat_at"),
)

queue_leases = Table(
    "queue_leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class NewTask:
    handler: str
    payload: dict[str, Any]
    priority: int = 0
    delay: float = 0.0
    max_attempts: int | None = None
    group_key: str | None = None
    fair_key: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    handler: str
    payload: dict[str, Any]
    priority: int
    attempts: int
    max_attempts: int
    claims: int
    worker_id: str | None
    group_key: str | None
    last_error: str | None = None
    fair_key: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task as listed for operators (dead-letter view, CLI)."""

    id: int
    handler: str
    status: str
    attempts: int
    max_attempts: int
    group_key: str | None
    last_error: str | None
    payload: dict[str, Any]
