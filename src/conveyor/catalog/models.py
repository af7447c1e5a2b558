"""Provider specs added by operators at run time (``conveyor providers add``); the YAML
as given, so what was stored is exactly what was validated."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Text

from conveyor.core.models import UTCDateTime, metadata

provider_specs = Table(
    "provider_specs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
