"""``/v1/jobs``: create (optionally waiting), list, read, follow, cancel, retry, download."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from conveyor.assets.service import AssetService
from conveyor.clients.dependencies import CurrentClient
from conveyor.jobs.events import JobEvent
from conveyor.jobs.repository import JobRow
from conveyor.jobs.schemas import (
    ItemOut,
    ItemPage,
    JobCreate,
    JobOut,
    JobPage,
    JobResults,
    JobStatus,
    Progress,
    RetryOut,
)
from conveyor.jobs.service import JobService
from conveyor.storage import ZipEntry, stream_zip

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=64)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "No such job (for this client)"},
}
_SSE_PING = 15.0
# Without an event, the stream re-reads the job this often (events from other nodes carry
# only what must travel at once; see jobs.events.CROSS_NODE_EVENTS).
_SSE_RECHECK = 1.0


def job_service(request: Request) -> JobService:
    service: JobService = request.app.state.runtime.jobs
    return service


def _assets(request: Request) -> AssetService:
    service: AssetService = request.app.state.runtime.assets
    return service


@router.post(
    "",
    response_model=JobOut,
    status_code=201,
    summary="Create a job",
    responses={
        200: {"model": JobOut, "description": "Finished within `wait`, or an existing job"},
        202: {"model": JobOut, "description": "Accepted; still running after `wait`"},
        401: _ERRORS[401],
        413: {"description": "Request body too large"},
        422: {"description": "Invalid job"},
    },
)
async def create_job(
    request: Request, client: CurrentClient, body: JobCreate, response: Response
) -> JobOut:
    service = job_service(request)
    submission = await service.prepare(client, body)
    created = await service.create(client, submission)
    job = created.job
    if body.wait:
        limit = request.app.state.runtime.settings.max_wait_seconds
        job = await service.wait(job.id, min(body.wait, limit))
        response.status_code = 200 if job.finished else 202
    elif not created.created:
        response.status_code = 200
    return JobOut.from_row(job)


@router.get("", response_model=JobPage, summary="List your jobs, newest first")
async def list_jobs(
    request: Request,
    client: CurrentClient,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> JobPage:
    rows, next_cursor = await job_service(request).list_jobs(
        client, status=status, limit=limit, cursor=cursor
    )
    return JobPage(data=[JobOut.from_row(r) for r in rows], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, summary="One job", responses=_ERRORS)
async def get_job(request: Request, client: CurrentClient, job_id: JobId) -> JobOut:
    return JobOut.from_row(await job_service(request).get(client, job_id))


@router.get("/{job_id}/items", response_model=ItemPage, summary="Items of a job", responses=_ERRORS)
async def list_items(
    request: Request,
    client: CurrentClient,
    job_id: JobId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ItemPage:
    service = job_service(request)
    job = await service.get(client, job_id)
    rows, next_cursor = await service.items(job, limit=limit, cursor=cursor)
    return ItemPage(data=[ItemOut.from_row(r) for r in rows], next_cursor=next_cursor)


async def _results(service: JobService, job: JobRow) -> JobResults:
    rows, _ = await service.items(job)
    return JobResults(job=JobOut.from_row(job), items=[ItemOut.from_row(r) for r in rows])


@router.get(
    "/{job_id}/results",
    response_model=JobResults,
    summary="The job with every item's result",
    responses=_ERRORS,
)
async def get_results(request: Request, client: CurrentClient, job_id: JobId) -> JobResults:
    service = job_service(request)
    return await _results(service, await service.get(client, job_id))


@router.get(
    "/{job_id}/download",
    summary="Results as a JSON file, or a ZIP with every result file",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}, "application/zip": {}}},
        **_ERRORS,
    },
)
async def download(
    request: Request,
    client: CurrentClient,
    job_id: JobId,
    format: Annotated[Literal["json", "zip"], Query()] = "json",
) -> Response:
    service = job_service(request)
    job = await service.get(client, job_id)
    results = await _results(service, job)
    document = results.model_dump_json(indent=2).encode()
    if format == "json":
        return Response(
            document,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="job-{job.id}.json"'},
        )
    return StreamingResponse(
        stream_zip(_zip_entries(_assets(request), results, document)),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="job-{job.id}.zip"'},
    )


async def _zip_entries(
    assets: AssetService, results: JobResults, document: bytes
) -> AsyncIterator[ZipEntry]:
    yield ZipEntry("results.json", _once(document), size=len(document))
    files_of = {item.id: (item.output or {}).get("files") or [] for item in results.items}
    stored = await assets.get_many(
        sorted({str(ref.get("asset_id")) for refs in files_of.values() for ref in refs})
    )
    for item in results.items:
        folder = f"{item.seq + 1:05d}-{item.key or item.id}"
        for index, ref in enumerate(files_of[item.id]):
            asset = stored.get(str(ref.get("asset_id")))
            if asset is None:
                continue  # purged meanwhile; the results document still lists it
            extension = asset.storage_key.rsplit(".", 1)[-1] if "." in asset.storage_key else "bin"
            yield ZipEntry(
                f"{folder}/{index + 1}.{extension}",
                lambda asset=asset: assets.stream(asset),  # type: ignore[misc]
                size=asset.size,
                modified=asset.created_at,
            )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


@router.get(
    "/{job_id}/events",
    summary="Follow a job (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
)
async def job_events(request: Request, client: CurrentClient, job_id: JobId) -> StreamingResponse:
    service = job_service(request)
    job = await service.get(client, job_id)
    return StreamingResponse(
        _event_stream(request, service, job),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=_json_default)}\n\n".encode()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def _event_stream(request: Request, service: JobService, job: JobRow) -> AsyncIterator[bytes]:
    with service.events.subscribe(job.id) as queue:
        since = service.clock.now()
        snapshot = JobOut.from_row(job)
        yield _sse("job", snapshot.model_dump(mode="json"))
        last = snapshot.progress
        reported: set[str] = set()
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while not job.finished:
            event: JobEvent | None = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SSE_RECHECK):
                    event = await queue.get()
            if await request.is_disconnected():
                return
            if event is not None and event.type.startswith("item."):
                reported.add(str(event.data.get("item_id")))
                quiet_since = loop.time()
                yield _sse(event.type, {"job_id": job.id, **event.data})
                continue
            if loop.time() - quiet_since >= _SSE_PING:
                quiet_since = loop.time()
                yield b": ping\n\n"
            if event is not None and event.type == "job.progress":
                # The event carries the row as committed: no need to read it again.
                data = dict(event.data)
                status = str(data.pop("status"))
                progress = Progress(**data)
            else:
                # On a quiet second or a job-level event, the row itself: right even when
                # events were missed or happened on another node.
                job = await service.get(None, job.id)
                status, progress = job.status, JobOut.from_row(job).progress
            if progress != last:
                last = progress
                quiet_since = loop.time()
                yield _sse(
                    "progress", {"job_id": job.id, "status": status, **progress.model_dump()}
                )
        # An item's event can trail the commit that finished the job (it is published after
        # commit, by another task or node): report from the rows whatever we did not see.
        for item in await service.items_finished_since(job, since):
            if item.id not in reported:
                yield _sse(
                    f"item.{item.status}",
                    {
                        "job_id": job.id,
                        "item_id": item.id,
                        "key": item.key,
                        "seq": item.seq,
                        "error": item.error,
                    },
                )
        yield _sse("finished", JobOut.from_row(job).model_dump(mode="json"))


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job", responses=_ERRORS)
async def cancel_job(request: Request, client: CurrentClient, job_id: JobId) -> JobOut:
    return JobOut.from_row(await job_service(request).cancel(client, job_id))


@router.post(
    "/{job_id}/retry",
    response_model=RetryOut,
    summary="Run the failed items again",
    responses={**_ERRORS, 409: {"description": "Nothing to retry"}},
)
async def retry_job(request: Request, client: CurrentClient, job_id: JobId) -> RetryOut:
    job, retried = await job_service(request).retry(client, job_id)
    return RetryOut(job=JobOut.from_row(job), retried=retried)
