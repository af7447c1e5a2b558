"""Boxes (a client's collections of media) and the assets in them, as seed 003 has them.

An asset is an upload or a generation. An upload is ``COMPLETED`` from the start and points
at its stored file. A generation is a durable job underneath (``job_id``): its status,
error, provider task id and file are read from the job when asked for, so they can never
disagree with it. When the job finishes, what it said is also kept here (``settled_*``,
``file_asset_id`` pointing at the asset's own copy of the result row): retention deletes old
jobs with their files' rows, and a box keeps its results for as long as the box exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text

from conveyor.core.models import JSONType, UTCDateTime, metadata

# The seed's words, upper case as its API shows them.
PENDING: Final = "PENDING"
PROCESSING: Final = "PROCESSING"
COMPLETED: Final = "COMPLETED"
FAILED: Final = "FAILED"
STATUSES: Final = (PENDING, PROCESSING, COMPLETED, FAILED)

UPLOADED: Final = "UPLOADED"
GENERATED: Final = "GENERATED"
IMG2VID: Final = "IMG2VID"
SOURCE_TYPES: Final = (UPLOADED, GENERATED, IMG2VID)

# The jobs of box generations say where they came from (``jobs.source``).
JOB_SOURCE: Final = "boxes"

boxes = Table(
    "boxes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_boxes_client_created", "client_id", "created_at", "id"),
)

box_assets = Table(
    "box_assets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("box_id", String(36), ForeignKey("boxes.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(36), ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("source_type", String(16), nullable=False),
    Column(
        "parent_id", String(36), ForeignKey("box_assets.id", ondelete="SET NULL"), nullable=True
    ),
    Column("model", String(128), nullable=True),
    Column("prompt", Text, nullable=True),
    Column("config", JSONType, nullable=True),
    # The generation's job; NULL for uploads, and once retention has deleted the job.
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
    # The stored file: the upload, or this asset's copy of the generation's result.
    Column(
        "file_asset_id", String(36), ForeignKey("assets.id", ondelete="SET NULL"), nullable=True
    ),
    # What the job said when it finished (uploads: COMPLETED from the start).
    Column("settled_status", String(16), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("external_task_id", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_box_assets_box_created", "box_id", "created_at", "id"),
    Index("ix_box_assets_job", "job_id"),
    Index("ix_box_assets_unsettled", "settled_status", "created_at"),
)


@dataclass(frozen=True, slots=True)
class BoxRow:
    id: str
    client_id: str
    name: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BoxAssetRow:
    id: str
    box_id: str
    client_id: str
    source_type: str
    parent_id: str | None
    model: str | None
    prompt: str | None
    config: dict[str, Any] | None
    job_id: str | None
    file_asset_id: str | None
    settled_status: str | None
    error_message: str | None
    external_task_id: str | None
    created_at: datetime
    updated_at: datetime
