"""``/api/media``: the flashcard media API of seed 002, in the style of its DRF backend.

Every route but the signed file link needs the user's API key (``Authorization: Token
<key>`` or ``Bearer <key>``, or nothing in open mode); a user sees only their own tasks.
Paths end with a slash, as Django's do. Details: docs/compat-media.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from conveyor.assets.models import Asset
from conveyor.compat.media.schemas import (
    MAX_LISTED,
    AcceptedOut,
    Kind,
    MediaFileOut,
    RetriedOut,
    TaskOut,
    TaskPageOut,
    TaskStatus,
)
from conveyor.compat.media.service import Answer
from conveyor.content.serving import served_as
from conveyor.deps import (
    ClientServiceDep,
    DatabaseDep,
    MediaServiceDep,
    ReadConn,
    TokenOrBearerClient,
    WriteConn,
    token_or_bearer_client,
)
from conveyor.recipes.word_media import MAX_PROMPT, MAX_VOICE, MAX_WORD
from conveyor.storage import ObjectStream

router = APIRouter(prefix="/api/media", tags=["media (seed 002)"])

TaskId = Annotated[str, Path(min_length=1, max_length=64)]
AssetId = Annotated[str, Path(min_length=1, max_length=64)]
_ERROR: dict[str, Any] = {
    "description": 'JSON error: {"error": CODE, "message": "...", "code": status, "details"?}'
}
_BAD_WORDS: dict[str, Any] = {
    "description": 'Invalid words, each by index: {"details": {"words": {"3": {"word": [...]}}}}'
}
# Files a browser may render from this origin; anything else is downloaded, never shown.
_WORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["word"],
    "properties": {
        "word": {"type": "string", "minLength": 1, "maxLength": MAX_WORD},
        "language": {"type": "string", "description": "ISO 639-1 or BCP-47; default en"},
        "generate_image": {"type": "boolean", "default": True},
        "generate_audio": {"type": "boolean", "default": True},
        "image_prompt": {"type": "string", "maxLength": MAX_PROMPT},
        "voice": {"type": "string", "maxLength": MAX_VOICE},
    },
}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_SINGLE_COMMON = {
    "word": _WORD_SCHEMA["properties"]["word"],
    "language": _WORD_SCHEMA["properties"]["language"],
    "skip_existing": {"type": "boolean", "default": False},
}


def _origin(request: Request) -> str:
    return str(request.base_url)


def _respond(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, answer.status_code, headers=answer.headers)


async def _single(
    kind: Kind,
    request: Request,
    service: MediaServiceDep,
    client: TokenOrBearerClient,
    db: DatabaseDep,
) -> JSONResponse:
    words = await service.read_single(await request.body(), kind)
    async with db.write() as conn:
        job = await service.create(conn, client, words, sync=True)
    await service.wait(job.id)
    async with db.read() as conn:
        answer = await service.single_answer(conn, job.id, kind, service.origin(_origin(request)))
    return _respond(answer)


_SINGLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": MediaFileOut, "description": "Made within the wait"},
    202: {"model": AcceptedOut, "description": "Still running: poll the task"},
    400: _ERROR,
    401: _ERROR,
    409: {"description": "The task was cancelled meanwhile"},
    422: {"description": "No model of the chain can run here (MODEL_UNAVAILABLE)"},
    502: {"description": "Every model of the chain failed; the message says why"},
}


@router.post(
    "/generate-image/",
    summary="A picture of one word (answered in the call if done within the wait)",
    response_model=MediaFileOut,
    responses=_SINGLE_RESPONSES,
    openapi_extra=_body(
        {**_SINGLE_COMMON, "prompt": _WORD_SCHEMA["properties"]["image_prompt"]}, ["word"]
    ),
)
async def generate_image(
    request: Request, service: MediaServiceDep, client: TokenOrBearerClient, db: DatabaseDep
) -> JSONResponse:
    return await _single("image", request, service, client, db)


@router.post(
    "/generate-audio/",
    summary="The pronunciation of one word (answered in the call if done within the wait)",
    response_model=MediaFileOut,
    responses=_SINGLE_RESPONSES,
    openapi_extra=_body({**_SINGLE_COMMON, "voice": _WORD_SCHEMA["properties"]["voice"]}, ["word"]),
)
async def generate_audio(
    request: Request, service: MediaServiceDep, client: TokenOrBearerClient, db: DatabaseDep
) -> JSONResponse:
    return await _single("audio", request, service, client, db)


@router.post(
    "/generate-batch/",
    status_code=201,
    summary="Start a background task making the media of many words",
    response_model=AcceptedOut,
    responses={400: _BAD_WORDS, 401: _ERROR, 413: {"description": "Request body too large"}},
    openapi_extra=_body(
        {
            "words": {"type": "array", "minItems": 1, "items": _WORD_SCHEMA},
            "skip_existing": {
                "type": "boolean",
                "default": False,
                "description": "Reuse media you made before for the same word and inputs",
            },
        },
        ["words"],
    ),
)
async def generate_batch(
    request: Request, service: MediaServiceDep, client: TokenOrBearerClient, db: DatabaseDep
) -> JSONResponse:
    words = await service.read_batch(await request.body())
    async with db.write() as conn:
        job = await service.create(conn, client, words, sync=False)
    return _respond(service.accepted(job))


@router.get(
    "/tasks/",
    summary="Your tasks, newest first",
    response_model=TaskPageOut,
    responses={401: _ERROR},
)
async def list_tasks(
    request: Request,
    service: MediaServiceDep,
    client: TokenOrBearerClient,
    conn: ReadConn,
    status: Annotated[TaskStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TaskPageOut:
    origin = service.origin(_origin(request))
    return await service.list_tasks(
        conn, client, status=status, limit=limit, offset=offset, origin=origin
    )


@router.get(
    "/tasks/{task_id}/",
    summary="A task's status, progress and every word's result",
    response_model=TaskOut,
    response_model_exclude_none=True,
    responses={401: _ERROR, 404: _ERROR},
)
async def get_task(
    task_id: TaskId,
    request: Request,
    service: MediaServiceDep,
    client: TokenOrBearerClient,
    conn: ReadConn,
) -> JSONResponse:
    return JSONResponse(await service.task(conn, client, task_id, service.origin(_origin(request))))


@router.delete(
    "/tasks/{task_id}/",
    summary="Cancel a task: provider work stops, what is made is kept",
    response_model=TaskOut,
    responses={401: _ERROR, 404: _ERROR},
)
async def cancel_task(
    task_id: TaskId,
    request: Request,
    service: MediaServiceDep,
    client: TokenOrBearerClient,
    conn: WriteConn,
) -> JSONResponse:
    origin = service.origin(_origin(request))
    return JSONResponse(await service.cancel(conn, client, task_id, origin))


@router.post(
    "/tasks/{task_id}/retry/",
    summary="Run the failed words again (and the failed medium of partial words)",
    response_model=RetriedOut,
    responses={401: _ERROR, 404: _ERROR, 409: {"description": "Nothing failed"}},
)
async def retry_task(
    task_id: TaskId,
    request: Request,
    service: MediaServiceDep,
    client: TokenOrBearerClient,
    conn: WriteConn,
) -> JSONResponse:
    origin = service.origin(_origin(request))
    return JSONResponse(await service.retry(conn, client, task_id, origin))


@router.get(
    "/files/{asset_id}/",
    response_class=StreamingResponse,
    summary="A generated file, by its signed link (no key needed) or with your API key",
    responses={
        # Images and audio shown inline; any other stored type is sent as a download.
        200: {"content": {"image/*": {}, "audio/*": {}, "*/*": {}}},
        401: {**_ERROR, "description": "No signed link and no (or a wrong) API key"},
        403: _ERROR,
        404: _ERROR,
    },
)
async def get_file(
    asset_id: AssetId,
    request: Request,
    service: MediaServiceDep,
    clients: ClientServiceDep,
    conn: ReadConn,
    expires: Annotated[int | None, Query(ge=0, le=2**40)] = None,
    sig: Annotated[str | None, Query(min_length=64, max_length=64)] = None,
) -> StreamingResponse:
    signed = expires is not None and sig is not None
    client = (
        None
        if signed
        else await token_or_bearer_client(clients, request.headers.get("authorization"))
    )
    asset, stream = await service.file(
        conn, asset_id, expires=expires, signature=sig, client=client
    )
    return _stream(asset, stream)


def _stream(asset: Asset, stream: ObjectStream) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async with stream:
            async for chunk in stream:
                yield chunk

    # Inline only for media types that run nothing (not every image/*: SVG carries script).
    served = served_as(asset.mime_type)
    headers = {
        "Content-Length": str(asset.size),
        "Cache-Control": "private, max-age=3600",
        **served.headers,
    }
    return StreamingResponse(body(), media_type=served.media_type, headers=headers)
