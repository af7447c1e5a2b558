"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import text

from conveyor.deps import RuntimeDep

router = APIRouter(tags=["system"])

QUEUE_DEPTH = Gauge("conveyor_queue_tasks", "Tasks in the queue by status", ["status"])
LIVE_WORKERS = Gauge("conveyor_workers_live", "Workers with a fresh heartbeat")


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, str | None]:
    try:
        async with asyncio.timeout(5):
            await probe
        return name, None
    except Exception as exc:
        return name, f"{type(exc).__name__}: {exc}"[:300]


@router.get(
    "/readyz",
    summary="Readiness: database and storage answer",
    responses={503: {"description": "A dependency is down"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:

    async def database() -> None:
        async with runtime.db.read() as conn:
            await conn.execute(text("SELECT 1"))

    results = await asyncio.gather(
        _check("database", database()), _check("storage", runtime.storage.check())
    )
    checks = {name: ("ok" if error is None else error) for name, error in results}
    ready = all(error is None for _, error in results)
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if runtime.settings.simulate:
        body["simulated"] = True
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    async with runtime.db.read() as conn:
        counts = await runtime.queue.counts(conn)
        live = await runtime.queue.live_workers(
            conn, stale_after=runtime.settings.heartbeat_timeout
        )
    for status, count in counts.items():
        QUEUE_DEPTH.labels(status).set(count)
    LIVE_WORKERS.set(live)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
