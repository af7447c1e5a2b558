"""``/v1/jobs``: create (optionally waiting), list, read, follow, cancel, retry, download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from conveyor.content.serving import served_as
from conveyor.deps import (
    CurrentClient,
    DatabaseDep,
    JobServiceDep,
    JobStreamsDep,
    ReadConn,
    SettingsDep,
    WriteConn,
)
from conveyor.jobs.estimates import JobEstimate
from conveyor.jobs.models import JobRow
from conveyor.jobs.schemas import (
    ItemOut,
    ItemPage,
    JobCreate,
    JobOut,
    JobPage,
    JobResults,
    JobStatus,
    JobWithItems,
    RetryOut,
)
from conveyor.jobs.streams import parse_event_id

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=64)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "No such job (for this client)"},
}


@router.post(
    "",
    response_model=JobWithItems,
    status_code=201,
    summary="Create a job",
    description="With `wait`, the answer also holds every item with its result (`items`), "
    "each output file with a `url` to download it.",
    responses={
        200: {
            "model": JobWithItems | JobEstimate,
            "description": "Finished within `wait`, or an existing job; with `dry_run`, "
            "the estimate (`JobEstimate`: each item's model chain with prices) and nothing "
            "created",
        },
        202: {"model": JobWithItems, "description": "Accepted; still running after `wait`"},
        401: _ERRORS[401],
        413: {"description": "Request body too large"},
        415: {"description": "The body is not sent as `Content-Type: application/json`"},
        422: {"description": "Invalid job: `details.errors` lists each bad field by location"},
    },
)
async def create_job(
    request: Request,
    client: CurrentClient,
    body: JobCreate,
    response: Response,
    db: DatabaseDep,
    jobs: JobServiceDep,
    streams: JobStreamsDep,
    settings: SettingsDep,
) -> JobWithItems | JSONResponse:
    submission = jobs.prepare(body)
    await jobs.check_webhook(submission)
    await jobs.vet(submission)
    if body.dry_run:
        async with db.read() as conn:
            estimate = await jobs.estimate(conn, client, submission)
        return JSONResponse(estimate.model_dump(mode="json"))
    async with db.write() as conn:
        created = await jobs.create(conn, client, submission)
    job = created.job
    if body.wait:
        job = await streams.wait(job.id, min(body.wait, settings.max_wait_seconds))
        response.status_code = 200 if job.finished else 202
        results = await streams.results(job, request_base=str(request.base_url))
        return JobWithItems(**results.job.model_dump(), items=results.items)
    if not created.created:
        response.status_code = 200
    return JobWithItems(**JobOut.from_row(job).model_dump())


@router.get("", response_model=JobPage, summary="List your jobs, newest first")
async def list_jobs(
    client: CurrentClient,
    conn: ReadConn,
    jobs: JobServiceDep,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> JobPage:
    rows, next_cursor = await jobs.list_jobs(
        conn, client, status=status, limit=limit, cursor=cursor
    )
    reasons = await jobs.error_reasons(conn, rows)
    return JobPage(
        data=[JobOut.from_row(r, reasons.get(r.id)) for r in rows], next_cursor=next_cursor
    )


@router.get("/{job_id}", response_model=JobOut, summary="One job", responses=_ERRORS)
async def get_job(
    client: CurrentClient, conn: ReadConn, jobs: JobServiceDep, job_id: JobId
) -> JobOut:
    return await jobs.shown(conn, await jobs.get(conn, client, job_id))


@router.get("/{job_id}/items", response_model=ItemPage, summary="Items of a job", responses=_ERRORS)
async def list_items(
    client: CurrentClient,
    conn: ReadConn,
    jobs: JobServiceDep,
    job_id: JobId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ItemPage:
    job = await jobs.get(conn, client, job_id)
    rows, next_cursor = await jobs.items(conn, job, limit=limit, cursor=cursor)
    return ItemPage(data=[ItemOut.from_row(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{job_id}/results",
    response_model=JobResults,
    summary="The job with every item's result",
    responses=_ERRORS,
)
async def get_results(
    request: Request,
    client: CurrentClient,
    conn: ReadConn,
    jobs: JobServiceDep,
    streams: JobStreamsDep,
    job_id: JobId,
) -> JobResults:
    job = await jobs.get(conn, client, job_id)
    return await streams.results(job, request_base=str(request.base_url))


@router.get(
    "/{job_id}/download",
    summary="Results as a JSON file, or a ZIP with every result file (what is finished so far)",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}, "application/zip": {}}},
        **_ERRORS,
    },
)
async def download(
    request: Request,
    client: CurrentClient,
    conn: ReadConn,
    jobs: JobServiceDep,
    streams: JobStreamsDep,
    job_id: JobId,
    format: Annotated[Literal["json", "zip"], Query()] = "json",
) -> Response:
    job = await jobs.get(conn, client, job_id)
    results = await streams.results(job, request_base=str(request.base_url))
    if format == "json":
        return Response(
            results.model_dump_json(indent=2).encode(),
            media_type="application/json",
            headers=served_as("application/json", f"job-{job_id}.json", attachment=True).headers,
        )
    return StreamingResponse(
        streams.archive(results),
        media_type="application/zip",
        headers=served_as("application/zip", f"job-{job_id}.zip", attachment=True).headers,
    )


async def _followed_job(
    client: CurrentClient, db: DatabaseDep, jobs: JobServiceDep, job_id: JobId
) -> JobRow:
    """The job to follow, read before the stream starts: an unknown job is a plain 404."""
    # Not ReadConn: that snapshot would stay open as long as the stream, minutes.
    async with db.read() as conn:
        return await jobs.get(conn, client, job_id)


@router.get(
    "/{job_id}/events",
    summary="Follow a job (Server-Sent Events; resumes from Last-Event-ID)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
)
async def job_events(
    job: Annotated[JobRow, Depends(_followed_job)],
    streams: JobStreamsDep,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> AsyncIterator[ServerSentEvent]:
    async for event in streams.follow(job, resume_from=parse_event_id(last_event_id)):
        yield ServerSentEvent(event=event.event, data=event.data, id=event.id)


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job", responses=_ERRORS)
async def cancel_job(
    client: CurrentClient, conn: WriteConn, jobs: JobServiceDep, job_id: JobId
) -> JobOut:
    return await jobs.shown(conn, await jobs.cancel(conn, client, job_id))


@router.post(
    "/{job_id}/retry",
    response_model=RetryOut,
    summary="Run the failed and cancelled items again",
    responses={**_ERRORS, 409: {"description": "Nothing to retry"}},
)
async def retry_job(
    client: CurrentClient, conn: WriteConn, jobs: JobServiceDep, job_id: JobId
) -> RetryOut:
    job, retried = await jobs.retry(conn, client, job_id, cancelled_too=True)
    return RetryOut(job=await jobs.shown(conn, job), retried=retried)
