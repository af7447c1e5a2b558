"""What the console's pages load after they are shown: live events, state, files, badges.

A job page follows its job over the same stream as ``GET /v1/jobs/{id}/events``
(``JobStreams.follow``: ``job``, ``item.*``, ``progress``, ``stage``, ``finished``, each
with an ``id:``; a reconnecting browser sends ``Last-Event-ID`` and misses nothing), here
under the console's session instead of an API key, since a browser's ``EventSource``
cannot send one. Where the stream cannot be held open (some proxies), the page polls
``state`` instead. Files are served under the same session, so a person's images never need
a key in a URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from conveyor.content.serving import served_as
from conveyor.deps import (
    AssetServiceDep,
    ConsoleServiceDep,
    ConsoleViewer,
    DatabaseDep,
    JobServiceDep,
    JobStreamsDep,
    ReadConn,
    ThumbnailsDep,
)
from conveyor.errors import NotFound
from conveyor.jobs.models import JobRow
from conveyor.jobs.schemas import JobOut
from conveyor.jobs.streams import parse_event_id
from conveyor.storage import ObjectStream
from conveyor.web.routing import ConsoleRoute, render
from conveyor.web.thumbnails import THUMBNAIL_MIME

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

JobId = Annotated[str, Path(min_length=1, max_length=64)]
AssetId = Annotated[str, Path(min_length=1, max_length=64)]


async def followed_job(
    viewer: ConsoleViewer, db: DatabaseDep, jobs: JobServiceDep, job_id: JobId
) -> JobRow:
    """The job to stream, read before the stream starts: an unknown job (or another
    client's) is a 404, not a stream that breaks after its 200."""
    # Not ReadConn: a stream lasts minutes, a read snapshot must not.
    async with db.read() as conn:
        return await jobs.get(conn, viewer.client, job_id)


@router.get("/console/jobs/{job_id}/events", response_class=EventSourceResponse)
async def job_events(
    job: Annotated[JobRow, Depends(followed_job)],
    streams: JobStreamsDep,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> AsyncIterator[ServerSentEvent]:
    async for event in streams.follow(job, resume_from=parse_event_id(last_event_id)):
        yield ServerSentEvent(event=event.event, data=event.data, id=event.id)


@router.get("/console/jobs/{job_id}/state")
async def job_state(
    viewer: ConsoleViewer, conn: ReadConn, jobs: JobServiceDep, job_id: JobId
) -> dict[str, Any]:
    """The job's status and progress, for pages that poll instead of streaming."""
    job = JobOut.from_row(await jobs.get(conn, viewer.client, job_id))
    return {
        "status": job.status,
        "stage": job.stage,
        "finished": job.status not in ("pending", "processing"),
        "progress": job.progress.model_dump(),
    }


@router.get("/console/jobs/{job_id}/download")
async def download(
    viewer: ConsoleViewer,
    conn: ReadConn,
    jobs: JobServiceDep,
    streams: JobStreamsDep,
    job_id: JobId,
    format: Annotated[Literal["json", "zip"], Query()] = "zip",
) -> Response:
    """Every result as a ZIP (or the JSON document): what is finished so far."""
    results = await streams.results(await jobs.get(conn, viewer.client, job_id))
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


def _stream(stream: ObjectStream, media_type: str, headers: dict[str, str]) -> Response:
    async def body() -> AsyncIterator[bytes]:
        async with stream:
            async for chunk in stream:
                yield chunk

    headers = {
        "Content-Length": str(stream.size),
        "Cache-Control": "private, max-age=3600",
        **headers,
    }
    return StreamingResponse(body(), media_type=media_type, headers=headers)


@router.get("/console/assets/{asset_id}")
async def asset_content(
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    assets: AssetServiceDep,
    asset_id: AssetId,
) -> Response:
    asset = await console.asset(conn, viewer.client, asset_id)
    served = served_as(asset.mime_type, asset.filename, fallback_name=asset.id)
    return _stream(await assets.open(asset), served.media_type, served.headers)


@router.get("/console/assets/{asset_id}/thumbnail")
async def asset_thumbnail(
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    thumbnails: ThumbnailsDep,
    asset_id: AssetId,
) -> Response:
    asset = await console.asset(conn, viewer.client, asset_id)
    stream = await thumbnails.open(asset)
    if stream is None:
        raise NotFound(f"asset {asset_id} has no thumbnail (not an image this server reads)")
    served = served_as(THUMBNAIL_MIME)
    return _stream(stream, served.media_type, served.headers)


@router.get("/console/badge", response_class=HTMLResponse)
async def badge(
    request: Request, viewer: ConsoleViewer, conn: ReadConn, console: ConsoleServiceDep
) -> Response:
    return render(
        request, "_badges.html", viewer=viewer, badges=await console.badges(conn, viewer.client)
    )
