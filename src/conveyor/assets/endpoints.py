"""``/v1/assets``: upload a file, read its metadata, stream its bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import StreamingResponse

from conveyor.assets.models import Asset
from conveyor.assets.schemas import AssetOut
from conveyor.content.serving import served_as
from conveyor.deps import AssetLinksDep, AssetServiceDep, CurrentClient, DatabaseDep, ReadConn
from conveyor.errors import Forbidden
from conveyor.storage import ObjectStream

router = APIRouter(prefix="/v1/assets", tags=["assets"])

AssetId = Annotated[str, Path(min_length=1, max_length=64)]
_READ_CHUNK = 1 << 20


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_READ_CHUNK):
        yield chunk


@router.post("", status_code=201, response_model=AssetOut, summary="Upload a file")
async def upload_asset(
    client: CurrentClient,
    db: DatabaseDep,
    assets: AssetServiceDep,
    file: Annotated[UploadFile, File(description="The file; its type is sniffed from the bytes")],
) -> AssetOut:
    # The bytes first, outside any transaction (an upload may be slow), then the row.
    asset = await assets.ingest(client.id, _upload_chunks(file), filename=file.filename)
    async with db.write() as conn:
        await assets.add(conn, asset)
    return AssetOut.from_asset(asset)


@router.get("/{asset_id}", response_model=AssetOut, summary="Asset metadata")
async def get_asset(
    client: CurrentClient, conn: ReadConn, assets: AssetServiceDep, asset_id: AssetId
) -> AssetOut:
    return AssetOut.from_asset(await assets.get(conn, asset_id, client_id=client.id))


def _stream_asset(asset: Asset, stream: ObjectStream) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async with stream:
            async for chunk in stream:
                yield chunk

    # Inline only for media types that run nothing; HTML, SVG and the rest download.
    served = served_as(asset.mime_type, asset.filename, fallback_name=asset.id)
    headers = {
        "Content-Length": str(asset.size),
        "Cache-Control": "private, max-age=3600",
        **served.headers,
    }
    return StreamingResponse(body(), media_type=served.media_type, headers=headers)


@router.get(
    "/{asset_id}/signed",
    response_class=StreamingResponse,
    summary="Asset bytes through a signed, time-limited link (no API key)",
    responses={200: {"content": {"*/*": {}}}, 403: {}, 404: {}},
)
async def get_signed_content(
    conn: ReadConn,
    assets: AssetServiceDep,
    links: AssetLinksDep,
    asset_id: AssetId,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    sig: Annotated[str, Query(min_length=64, max_length=64)],
) -> StreamingResponse:
    if links is None or not links.valid(asset_id, expires, sig):
        raise Forbidden("invalid or expired link", code="INVALID_LINK")
    asset = await assets.get(conn, asset_id)
    return _stream_asset(asset, await assets.open(asset))


@router.get(
    "/{asset_id}/content",
    response_class=StreamingResponse,
    summary="Asset bytes",
    responses={200: {"content": {"*/*": {}}}},
)
async def get_asset_content(
    client: CurrentClient, conn: ReadConn, assets: AssetServiceDep, asset_id: AssetId
) -> StreamingResponse:
    asset = await assets.get(conn, asset_id, client_id=client.id)
    return _stream_asset(asset, await assets.open(asset))
