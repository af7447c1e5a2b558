"""``/api/boxes`` and ``/api/assets``: seed 003's boxes and assets, with its trailing slashes.

Authenticated like the native API (``Authorization: Bearer <key>``); each client sees only
its own boxes and assets. Every path also answers without its trailing slash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, File, Path, Query, Request, Response, UploadFile

from conveyor.compat.boxes.schemas import (
    AssetOut,
    BoxCreate,
    BoxOut,
    BoxUpdate,
    GenerateRequest,
)
from conveyor.deps import (
    BoxServiceDep,
    BoxSettlerDep,
    CurrentClient,
    DatabaseDep,
    ReadConn,
    WriteConn,
)

router = APIRouter(tags=["boxes (seed 003)"])

F = TypeVar("F", bound=Callable[..., Any])
BoxId = Annotated[str, Path(min_length=1, max_length=64)]
AssetId = Annotated[str, Path(min_length=1, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "No such box or asset among yours"},
}
_READ_CHUNK = 1 << 20


def _route(method: str, path: str, **options: Any) -> Callable[[F], F]:
    """Register ``path`` (with the seed's trailing slash) and the same without it."""

    def register(endpoint: F) -> F:
        router.add_api_route(path, endpoint, methods=[method], **options)
        router.add_api_route(
            path.rstrip("/"), endpoint, methods=[method], include_in_schema=False, **options
        )
        return endpoint

    return register


def _base(request: Request) -> str:
    return str(request.base_url)


@_route(
    "POST",
    "/api/boxes/",
    response_model=BoxOut,
    status_code=201,
    summary="Create a box",
    responses=_ERRORS,
)
async def create_box(
    body: BoxCreate, client: CurrentClient, boxes: BoxServiceDep, conn: WriteConn
) -> BoxOut:
    box = await boxes.create_box(conn, client, body.name)
    return await boxes.box_out(conn, box)


@_route(
    "GET",
    "/api/boxes/",
    response_model=list[BoxOut],
    summary="Your boxes, newest first",
    responses=_ERRORS,
)
async def list_boxes(
    client: CurrentClient,
    boxes: BoxServiceDep,
    conn: ReadConn,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[BoxOut]:
    return await boxes.boxes(conn, client, limit=limit, offset=offset)


@_route("GET", "/api/boxes/{box_id}/", response_model=BoxOut, summary="One box", responses=_ERRORS)
async def get_box(
    box_id: BoxId, client: CurrentClient, boxes: BoxServiceDep, conn: ReadConn
) -> BoxOut:
    return await boxes.box_out(conn, await boxes.box(conn, client, box_id))


@_route(
    "PATCH",
    "/api/boxes/{box_id}/",
    response_model=BoxOut,
    summary="Rename a box",
    responses=_ERRORS,
)
async def rename_box(
    box_id: BoxId, body: BoxUpdate, client: CurrentClient, boxes: BoxServiceDep, conn: WriteConn
) -> BoxOut:
    return await boxes.box_out(conn, await boxes.rename(conn, client, box_id, body.name))


@_route(
    "DELETE",
    "/api/boxes/{box_id}/",
    status_code=204,
    response_class=Response,
    summary="Delete a box: its assets and files; generations still running are cancelled",
    responses=_ERRORS,
)
async def delete_box(
    box_id: BoxId,
    client: CurrentClient,
    boxes: BoxServiceDep,
    settler: BoxSettlerDep,
    db: DatabaseDep,
) -> Response:
    async with db.write() as conn:
        freed = await boxes.delete_box(conn, client, box_id)
    settler.drop_unused_bytes(freed)
    return Response(status_code=204)


@_route(
    "GET",
    "/api/boxes/{box_id}/assets/",
    response_model=list[AssetOut],
    summary="The box's assets, newest first",
    responses=_ERRORS,
)
async def list_assets(
    request: Request,
    box_id: BoxId,
    client: CurrentClient,
    boxes: BoxServiceDep,
    conn: ReadConn,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[AssetOut]:
    views = await boxes.assets_of(conn, client, box_id, limit=limit, offset=offset)
    return [await boxes.out(view, request_base=_base(request)) for view in views]


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_READ_CHUNK):
        yield chunk


@_route(
    "POST",
    "/api/boxes/{box_id}/upload/",
    response_model=AssetOut,
    status_code=201,
    summary="Upload a file into the box: the asset is COMPLETED, UPLOADED",
    responses={
        **_ERRORS,
        413: {"description": "Larger than CONVEYOR_MAX_UPLOAD_BYTES"},
        415: {"description": "Not an image, video or audio file (judged by its bytes)"},
    },
)
async def upload(
    request: Request,
    box_id: BoxId,
    client: CurrentClient,
    boxes: BoxServiceDep,
    db: DatabaseDep,
    file: Annotated[UploadFile, File(description="An image, video or audio file")],
) -> AssetOut:
    async with db.read() as conn:
        await boxes.box(conn, client, box_id)  # a wrong box is refused before any byte
    # The bytes first, outside any transaction (an upload may be slow), then the rows.
    stored = await boxes.store_upload(client, _chunks(file), filename=file.filename)
    async with db.write() as conn:
        view = await boxes.add_upload(conn, client, box_id, stored)
    return await boxes.out(view, request_base=_base(request))


@_route(
    "POST",
    "/api/boxes/{box_id}/generate/",
    response_model=AssetOut,
    status_code=202,
    summary="Start a generation: the asset is PENDING; follow GET /api/assets/{id}/",
    responses={
        **_ERRORS,
        409: {"description": "The parent asset is not COMPLETED"},
        422: {"description": "Unknown model, wrong parent or config; nothing was sent"},
    },
)
async def generate(
    request: Request,
    box_id: BoxId,
    body: GenerateRequest,
    client: CurrentClient,
    boxes: BoxServiceDep,
    conn: WriteConn,
) -> AssetOut:
    view = await boxes.generate(conn, client, box_id, body)
    return await boxes.out(view, request_base=_base(request))


@_route(
    "GET",
    "/api/assets/{asset_id}/",
    response_model=AssetOut,
    summary="An asset: status, file_url, provider task id, error",
    responses=_ERRORS,
)
async def get_asset(
    request: Request,
    asset_id: AssetId,
    client: CurrentClient,
    boxes: BoxServiceDep,
    conn: ReadConn,
) -> AssetOut:
    view = await boxes.asset(conn, client, asset_id)
    return await boxes.out(view, request_base=_base(request))
