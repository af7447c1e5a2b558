"""Seed 004's API at the root: product photos, one at a time or in batches, unchanged for
its clients (``docs/product-photos.md``).

Who may call: as on the rest of Conveyor, anyone on a loopback address while no API key
exists (open mode), else a client's key as ``Authorization: Bearer``; each client sees only
its own photos (another's ids are 404). ``/health`` needs no key, like ``/healthz``. Every
route is a ``SeedRoute``: errors in the seed's body, ten requests at once per address.

An upload is checked whole before anything is written (``PhotosService``); the request's
body is limited before it is read (``PHOTO_BODY_LIMITS``, installed by the app on the
``BodySizeLimit`` middleware): about 10 MB for ``/process_single``, the batch limit for
``/process_batch``, refused in the seed's body.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute

from conveyor.compat.photos.errors import (
    FileTooLarge,
    InvalidParameter,
    MissingFile,
    seed_error_body,
)
from conveyor.compat.photos.images import ImageBody
from conveyor.compat.photos.routing import DRAIN_BYTES, SeedRoute
from conveyor.compat.photos.schemas import (
    BatchProgressOut,
    BatchStartedOut,
    HealthOut,
    HistoryOut,
    ModelOut,
    ModelsOut,
    ProcessingStartedOut,
    SeedErrorOut,
    SingleProgressOut,
)
from conveyor.compat.photos.uploads import MAX_FILE_BYTES, MAX_FILENAME
from conveyor.config import Settings
from conveyor.content.serving import served_as
from conveyor.core.http import PathBodyLimit, RenderRefusal
from conveyor.core.openapi import ErrorFamily
from conveyor.deps import CurrentClient, DatabaseDep, PhotosServiceDep, ReadConn
from conveyor.recipes.product_photo import MAX_PROMPT

router = APIRouter(tags=["product photos (seed 004)"], route_class=SeedRoute)

# What a one-photo form carries besides the photo: its fields and multipart boundaries.
FORM_OVERHEAD = 64 * 1024

Id = Annotated[str, Path(min_length=1, max_length=64)]
Flag = Annotated[bool, Form()]
_ERROR = {"model": SeedErrorOut, "description": 'The seed\'s body: {"error", "message", "code"}'}
_READ_ERRORS: dict[int | str, dict[str, Any]] = {404: _ERROR, 429: _ERROR}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "4000 a bad field, 4001 not PNG/JPEG/WEBP, 4002 corrupt"},
    413: {**_ERROR, "description": "4003: over 10 MB, or a decompression bomb"},
    429: {**_ERROR, "description": "4029: more than 10 requests at once from this address"},
    503: {**_ERROR, "description": "5003: the database did not answer"},
}


def photo_body_limits(settings: Settings) -> dict[str, PathBodyLimit]:
    """The request body limits of the upload routes, refused in the seed's body."""

    def refusal(status: int, message: str) -> dict[str, Any]:
        if status == 413:
            return seed_error_body(FileTooLarge(f"Файл слишком большой: {message}"))
        return seed_error_body(InvalidParameter(message))

    return {
        "/process_single": PathBodyLimit(MAX_FILE_BYTES + FORM_OVERHEAD, refusal, DRAIN_BYTES),
        "/process_batch": PathBodyLimit(settings.photos_batch_max_bytes, refusal, DRAIN_BYTES),
    }


def photo_refusal_for(path: str) -> RenderRefusal | None:
    """How ``RequestGuard`` words a refusal on ``path``: in the seed's body on the seed's own
    routes (matched as the router matches them), Conveyor's standard body elsewhere."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            return seed_error_body
    return None


def _seed_paths() -> frozenset[str]:
    return frozenset(route.path_format for route in router.routes if isinstance(route, APIRoute))


PHOTO_ERRORS = ErrorFamily(
    schema_name="PhotoError",
    schema={
        "type": "object",
        "title": "PhotoError",
        "description": "Every error of the seed-004 API: code is the seed's number, not the "
        "HTTP status (4000 a bad field, 4001 not PNG/JPEG/WEBP, 4002 corrupt, 4003 too "
        "large, 4004 not found, 4010 no or a wrong key, 4029 too many requests at once, "
        "5001/5002 a model failed, 5003 the database did not answer, 5000 anything else)",
        "required": ["error", "message", "code"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "code": {"type": "integer", "minimum": 4000, "maximum": 5999},
        },
    },
    owns=lambda path: path in _seed_paths(),
    always=frozenset({429}),
    no_422=True,
    descriptions={
        400: "4000: a bad or missing field, a NUL character",
        401: "4010: an API key is needed, or the one sent is wrong",
        404: "4004: no such processing_id, batch_id, image or model",
        413: "4003: the request body is too large",
        429: "4029: more than 10 requests at once from this address",
    },
)


def _image(body: ImageBody) -> StreamingResponse:
    # Always a PNG (a stored PNG as sniffed, anything else decoded and re-encoded).
    served = served_as("image/png")
    return StreamingResponse(
        body.chunks,
        media_type=served.media_type,
        headers={
            "Content-Length": str(body.size),
            "Cache-Control": "private, max-age=3600",
            **served.headers,
        },
    )


@router.post(
    "/process_single",
    summary="Process one product photo: analysis, cut-out, final on white",
    response_model=ProcessingStartedOut,
    responses=_UPLOAD_ERRORS,
)
async def process_single(
    client: CurrentClient,
    db: DatabaseDep,
    service: PhotosServiceDep,
    file: Annotated[
        UploadFile | None, File(description="The photo: PNG, JPEG or WEBP, at most 10 MB")
    ] = None,
    enhance: Flag = False,
    debug: Annotated[
        bool, Form(description="Accepted; every answer already carries what it would show")
    ] = False,
    model_id: Annotated[
        str | None,
        Form(alias="modelId", max_length=128, description="A model of GET /models; else auto"),
    ] = None,
    custom_prompt: Annotated[bool | None, Form(description="Use custom_prompt_text")] = None,
    custom_prompt_text: Annotated[str | None, Form(max_length=MAX_PROMPT)] = None,
    lora_version: Annotated[str | None, Form(max_length=8, description="v1 or v2")] = None,
    marketplace: Annotated[
        str | None,
        Form(max_length=32, description="yandex-market (default), ozon or wildberries"),
    ] = None,
) -> ProcessingStartedOut:
    if file is None:
        raise MissingFile("Файл не передан: send the photo as the multipart field 'file'")
    form = service.form(
        model_id=model_id,
        lora_version=lora_version,
        enhance=enhance,
        custom_prompt=custom_prompt,
        custom_prompt_text=custom_prompt_text,
        marketplace=marketplace,
    )
    photo = await service.check(file)
    upload = await service.store(client, photo)
    submission = service.submission(form, [(upload, photo.filename)], batch=False)
    async with db.write() as conn:
        job = await service.start(conn, client, submission, [upload])
    return ProcessingStartedOut(processing_id=job.id)


@router.get(
    "/single_progress/{processing_id}",
    summary="Where one photo is: status, current_step, image URLs",
    response_model=SingleProgressOut,
    responses=_READ_ERRORS,
)
async def get_single_progress(
    processing_id: Id, client: CurrentClient, conn: ReadConn, service: PhotosServiceDep
) -> SingleProgressOut:
    return await service.single_progress(conn, client, processing_id)


@router.get(
    "/single_image/{processing_id}/{step}",
    summary="The original, the cut-out (background) or the final, as PNG",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/png": {}}}, **_READ_ERRORS, 502: _ERROR},
)
async def get_single_image(
    processing_id: Id,
    step: Literal["original", "background", "final"],
    client: CurrentClient,
    conn: ReadConn,
    service: PhotosServiceDep,
) -> StreamingResponse:
    return _image(await service.single_image(conn, client, processing_id, step))


@router.post(
    "/process_batch",
    summary="Process several photos as one batch",
    response_model=BatchStartedOut,
    responses=_UPLOAD_ERRORS,
)
async def process_batch(
    client: CurrentClient,
    db: DatabaseDep,
    service: PhotosServiceDep,
    files: Annotated[list[UploadFile] | None, File(description="The photos")] = None,
    files_list: Annotated[
        list[UploadFile] | None, File(alias="files[]", description="The photos (PHP style)")
    ] = None,
    lora_version: Annotated[str | None, Form(max_length=8, description="v1 or v2")] = None,
    enhance: Flag = False,
    model_id: Annotated[str | None, Form(alias="modelId", max_length=128)] = None,
    marketplace: Annotated[str | None, Form(max_length=32)] = None,
) -> BatchStartedOut:
    uploads = [*(files or []), *(files_list or [])]
    if not uploads:
        raise MissingFile("Файлы не переданы: send the photos as the multipart field 'files'")
    form = service.form(
        model_id=model_id, lora_version=lora_version, enhance=enhance, marketplace=marketplace
    )
    service.check_batch_size(len(uploads))
    photos = [await service.check(upload, batch=True) for upload in uploads]
    stored = [await service.store(client, photo) for photo in photos]
    named = [(asset, photo.filename) for asset, photo in zip(stored, photos, strict=True)]
    submission = service.submission(form, named, batch=True)
    async with db.write() as conn:
        job = await service.start(conn, client, submission, stored)
    return BatchStartedOut(batch_id=job.id)


@router.get(
    "/batch_progress/{batch_id}",
    summary="How far a batch is; results lists the files finished so far",
    response_model=BatchProgressOut,
    responses=_READ_ERRORS,
)
async def get_batch_progress(
    batch_id: Id, client: CurrentClient, conn: ReadConn, service: PhotosServiceDep
) -> BatchProgressOut:
    return await service.batch_progress(conn, client, batch_id)


@router.get(
    "/batch_image/{batch_id}/{name}",
    summary="One image of a batch: {stem}_original.png or {stem}_processed.png",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/png": {}}}, **_READ_ERRORS, 502: _ERROR},
)
async def get_batch_image(
    batch_id: Id,
    name: Annotated[str, Path(min_length=1, max_length=MAX_FILENAME + 20)],
    client: CurrentClient,
    conn: ReadConn,
    service: PhotosServiceDep,
) -> StreamingResponse:
    return _image(await service.batch_image(conn, client, batch_id, name))


@router.get(
    "/download_batch/{batch_id}",
    summary="A ZIP of the batch: every original and every final made so far, as PNG",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, **_READ_ERRORS},
)
async def download_batch(
    batch_id: Id, client: CurrentClient, conn: ReadConn, service: PhotosServiceDep
) -> StreamingResponse:
    job, files = await service.batch_files(conn, client, batch_id)
    return StreamingResponse(
        service.archive(files),
        media_type="application/zip",
        headers={
            **served_as("application/zip", f"batch_{job.id}.zip", attachment=True).headers,
            # A batch still running gives what is finished so far; this says which.
            "X-Batch-Status": "completed" if job.finished else "processing",
        },
    )


@router.get(
    "/models",
    summary="Every background model, local ones included, as the seed's cards",
    response_model=ModelsOut,
)
async def list_models(_client: CurrentClient, service: PhotosServiceDep) -> ModelsOut:
    return service.models()


@router.get(
    "/models/{model_id:path}",
    summary="One background model, by the seed's id or the catalogue id",
    response_model=ModelOut,
    responses={404: _ERROR},
)
async def get_model(
    model_id: Annotated[str, Path(min_length=1, max_length=128)],
    _client: CurrentClient,
    service: PhotosServiceDep,
) -> ModelOut:
    return service.model(model_id)


@router.get(
    "/health",
    summary="openai, fal_ai and database from real checks (no paid call); no key needed",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database did not answer"}},
)
async def health(db: DatabaseDep, service: PhotosServiceDep) -> JSONResponse:
    answer = await service.health(db)
    status = 503 if answer.status == "unhealthy" else 200
    return JSONResponse(answer.model_dump(mode="json"), status_code=status)


@router.get(
    "/history",
    summary="Your photos of the last 30 days, newest first",
    response_model=HistoryOut,
    responses=_READ_ERRORS,
)
async def history(
    client: CurrentClient,
    conn: ReadConn,
    service: PhotosServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    batch_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> HistoryOut:
    return await service.history(conn, client, limit=limit, batch_id=batch_id)
