"""``/api/v1``: the vehicle-damage descriptions API of seed 000, unchanged for its clients.

``generate-descriptions`` is signed in the body (the seed's HMAC over ``lots``); status and
result reads go by the unguessable ``job_id``, as in the seed; listing and cancelling jobs
need the ``X-Client``/``X-Timestamp``/``X-Signature`` headers (see ``signing``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from conveyor.clients.service import Client
from conveyor.compat.descriptions.schemas import (
    REQUEST_SCHEMA,
    BatchAcceptedOut,
    BatchJobsOut,
    BatchResultsOut,
    BatchStatusOut,
    JobStatus,
    NotReadyOut,
    SyncAnswerOut,
)
from conveyor.compat.descriptions.service import Answer
from conveyor.compat.descriptions.signing import (
    CLIENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)
from conveyor.deps import DatabaseDep, DescriptionsServiceDep, ReadConn, WriteConn

router = APIRouter(prefix="/api/v1", tags=["descriptions (seed 000)"])

JobId = Annotated[str, Path(min_length=1, max_length=64)]
_ERROR: dict[str, Any] = {
    "description": 'JSON error: {"error": CODE, "message": "...", "code": status}'
}
_SIGNED: dict[int | str, dict[str, Any]] = {
    403: {
        "description": f"Missing or wrong {CLIENT_HEADER}, {TIMESTAMP_HEADER}, {SIGNATURE_HEADER}"
    }
}


Service = DescriptionsServiceDep


async def signed_client(request: Request, service: Service, db: DatabaseDep) -> Client:
    headers = request.headers
    name = service.authenticate_request(
        request.method,
        request.url.path,
        request.url.query,
        client=headers.get(CLIENT_HEADER),
        timestamp=headers.get(TIMESTAMP_HEADER),
        signature=headers.get(SIGNATURE_HEADER),
    )
    client = service.cached_client(name)
    if client is None:
        async with db.write() as conn:
            client = await service.client(conn, name)
    return client


SignedClient = Annotated[Client, Depends(signed_client)]


def _respond(answer: Answer, **headers: str) -> JSONResponse:
    return JSONResponse(answer.body, answer.status_code, headers={**answer.headers, **headers})


@router.post(
    "/generate-descriptions",
    summary="Describe vehicle damage: 1 lot answers at once, 2+ lots start a batch",
    response_model=SyncAnswerOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": REQUEST_SCHEMA}},
        }
    },
    responses={
        200: {"model": SyncAnswerOut, "description": "One lot, described (sync mode)"},
        201: {"model": BatchAcceptedOut, "description": "Two or more lots: a batch job"},
        400: _ERROR,
        403: {"description": "Missing or wrong signature"},
        409: {"description": "The same signed lots asked for other languages (replay)"},
        413: {"description": "Request body too large"},
        422: {"description": "Sync mode: the lot has no usable image"},
        502: {"description": "Sync mode: every description model failed"},
        504: {"description": "Sync mode: not done in time; the body has the job_id"},
    },
)
async def generate_descriptions(
    request: Request, service: Service, db: DatabaseDep
) -> JSONResponse:
    started = time.perf_counter()
    submission = service.read_submission(await request.body())
    async with db.write() as conn:
        client = await service.client(conn, submission.signer)
        job = await service.job_for(conn, client, submission)
    if not submission.sync:
        return _respond(service.accepted(job, submission, time.perf_counter() - started))
    await service.wait(job.id)
    async with db.read() as conn:
        return _respond(await service.sync_answer(conn, job.id, submission.request))


@router.get(
    "/batch-status/{job_id}",
    summary="Status and progress of a job",
    response_model=BatchStatusOut,
    response_model_exclude_none=True,
    responses={404: _ERROR},
)
async def batch_status(job_id: JobId, service: Service, conn: ReadConn) -> dict[str, Any]:
    return (await service.status(conn, job_id)).answer()


@router.get(
    "/batch-results/{job_id}",
    summary="Every lot's descriptions once the job is finished (202 before)",
    response_model=BatchResultsOut,
    responses={202: {"model": NotReadyOut, "description": "Still running"}, 404: _ERROR},
)
async def batch_results(job_id: JobId, service: Service, conn: ReadConn) -> JSONResponse:
    return _respond(await service.results(conn, job_id))


@router.get(
    "/batch-results/{job_id}/download",
    summary="The results as a JSON file (202 while still running)",
    response_model=BatchResultsOut,
    responses={202: {"model": NotReadyOut, "description": "Still running"}, 404: _ERROR},
)
async def download_results(job_id: JobId, service: Service, conn: ReadConn) -> JSONResponse:
    answer = await service.results(conn, job_id)
    if answer.status_code != 200:
        return _respond(answer)
    filename = f"batch-results-{job_id}.json"
    return _respond(answer, **{"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get(
    "/batch-jobs",
    summary="Your jobs of this API, newest first (signed request)",
    response_model=BatchJobsOut,
    response_model_exclude_none=True,
    responses={**_SIGNED, 422: _ERROR},
)
async def batch_jobs(
    service: Service,
    client: SignedClient,
    conn: ReadConn,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> BatchJobsOut:
    return await service.list_jobs(conn, client, status=status, limit=limit, offset=offset)


@router.post(
    "/batch-jobs/{job_id}/cancel",
    summary="Cancel one of your jobs (signed request); finished lots keep their results",
    response_model=BatchStatusOut,
    response_model_exclude_none=True,
    responses={**_SIGNED, 404: _ERROR, 409: {"description": "Already completed or failed"}},
)
async def cancel_batch_job(
    job_id: JobId, service: Service, client: SignedClient, conn: WriteConn
) -> dict[str, Any]:
    return (await service.cancel(conn, client, job_id)).answer()
