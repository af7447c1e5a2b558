"""Seed 004's ``GET /health``: ``openai``, ``fal_ai`` and ``database`` from real checks.

None of them calls a paid API, so a monitor may ask every few seconds:

* ``database``: a connection opens and answers ``SELECT 1`` within 2 s;
* ``openai`` / ``fal_ai``: the provider has a usable model (an API key is configured, or the
  simulator stands in for it) and its circuit breaker is not open, i.e. its last requests
  did not fail several times in a row (``providers.limits``; the catalogue's provider
  health, as ``GET /v1/providers`` shows it).

``status`` is ``healthy`` when all three are, ``degraded`` when only a provider is down (the
local models still make cut-outs: ``local_fallback``), ``unhealthy`` without a database.
``reasons`` says why a service is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text

from conveyor.catalog.service import CatalogService
from conveyor.compat.photos.catalogue import BACKGROUND_KIND
from conveyor.compat.photos.schemas import HealthOut, HealthServices
from conveyor.core.db import Database

CHECK_SECONDS = 2.0


async def health_answer(db: Database, catalog: CatalogService, now: datetime) -> HealthOut:
    reasons: dict[str, str] = {}
    database = True
    try:
        # Opens its own connection: whether one can be opened is part of the check.
        async with asyncio.timeout(CHECK_SECONDS), db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        database = False
        reasons["database"] = f"{type(exc).__name__}: {exc}"[:300]
    providers = {str(p["name"]): p for p in catalog.providers()}
    openai = _provider_usable(providers.get("openai"), "openai", reasons)
    fal = _provider_usable(providers.get("fal"), "fal_ai", reasons)
    local = any(
        entry["available"]
        for entry in catalog.models(kind=BACKGROUND_KIND)
        if str(entry["id"]).startswith("local/")
    )
    status: Literal["healthy", "degraded", "unhealthy"] = "healthy"
    if not database:
        status = "unhealthy"
    elif not (openai and fal):
        status = "degraded"
    return HealthOut(
        status=status,
        timestamp=now,
        services=HealthServices(openai=openai, fal_ai=fal, database=database),
        reasons=reasons,
        local_fallback=local,
    )


def _provider_usable(
    entry: Mapping[str, Any] | None, service: str, reasons: dict[str, str]
) -> bool:
    if entry is None:
        reasons[service] = "no such provider is installed"
        return False
    if not entry.get("available"):
        reasons[service] = "no model of this provider is usable: no API key is configured"
        return False
    health = entry.get("health") or {}
    if health.get("circuit") == "open":
        reasons[service] = (
            f"failing: {health.get('errors', 0)} of the last {health.get('requests', 0)} "
            "requests failed and its circuit breaker is open"
        )
        return False
    return True
