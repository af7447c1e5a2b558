"""Who may call: clients and their API keys (only a hash of each key is stored)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table

from conveyor.core.models import UTCDateTime, metadata

clients = Table(
    "clients",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(36), ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    # The first characters of the key, shown in listings so people can tell keys apart.
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    # "client" (its own jobs and assets) or "admin" (also providers, keys, the dead queue).
    Column("scope", String(16), nullable=False, server_default="client"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("ix_api_keys_client", "client_id"),
)
