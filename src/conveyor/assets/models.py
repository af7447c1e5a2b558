"""Stored files: uploads, intermediates and results. Bytes live in storage under a
content-addressed key; this row says whose they are and where they came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table

from conveyor.core.models import JSONType, UTCDateTime, metadata

SOURCE_UPLOADED = "uploaded"
SOURCE_GENERATED = "generated"
SOURCE_DERIVED = "derived"

assets = Table(
    "assets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("mime_type", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("storage_key", String(300), nullable=False),
    Column("source_type", String(16), nullable=False),
    Column(
        "parent_asset_id",
        String(36),
        ForeignKey("assets.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True),
    Column("item_id", String(36), nullable=True),
    Column("filename", String(255), nullable=True),
    Column("meta", JSONType, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_assets_client_created", "client_id", "created_at"),
    Index("ix_assets_job", "job_id"),
    # Retention asks which stored bytes are still referred to.
    Index("ix_assets_storage_key", "storage_key"),
)


@dataclass(frozen=True, slots=True)
class Asset:
    id: str
    client_id: str
    sha256: str
    mime_type: str
    size: int
    storage_key: str
    source_type: str
    parent_asset_id: str | None
    job_id: str | None
    item_id: str | None
    filename: str | None
    meta: dict[str, Any] | None
    created_at: datetime
