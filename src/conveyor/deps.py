"""What routes receive: the services of the running ``Runtime``, transactions, the caller.

Routes declare what they need with the ``Annotated`` aliases below and never look inside the
application object: the runtime, built once by the app's lifespan (``conveyor.app``), is
read from it here and nowhere else. Transactions are opened here, at the edge:
``ReadConn`` is a read snapshot, ``WriteConn`` one short write transaction committed when the
route returns, before the answer is sent (so a client never sees an answer whose change
could still roll back). Routes whose work outlives one transaction (an upload, a wait) take
``DatabaseDep`` and open their transactions themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.links import AssetLinks
from conveyor.assets.service import AssetService
from conveyor.catalog.service import CatalogService
from conveyor.clients.service import LOCAL_CLIENT, Client, ClientService
from conveyor.compat.descriptions.service import DescriptionsService
from conveyor.compat.media.service import MediaService
from conveyor.config import Settings
from conveyor.core.db import Database
from conveyor.errors import Unauthorized
from conveyor.jobs.service import JobService
from conveyor.jobs.streams import JobStreams
from conveyor.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


def get_db(runtime: RuntimeDep) -> Database:
    return runtime.db


DatabaseDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def read_connection(db: DatabaseDep) -> AsyncIterator[AsyncConnection]:
    async with db.read() as conn:
        yield conn


async def write_connection(db: DatabaseDep) -> AsyncIterator[AsyncConnection]:
    async with db.write() as conn:
        yield conn


ReadConn = Annotated[AsyncConnection, Depends(read_connection, scope="function")]
WriteConn = Annotated[AsyncConnection, Depends(write_connection, scope="function")]


def get_jobs(runtime: RuntimeDep) -> JobService:
    return runtime.jobs


def get_streams(runtime: RuntimeDep) -> JobStreams:
    return runtime.streams


def get_assets(runtime: RuntimeDep) -> AssetService:
    return runtime.assets


def get_catalog(runtime: RuntimeDep) -> CatalogService:
    return runtime.catalog


def get_clients(runtime: RuntimeDep) -> ClientService:
    return runtime.clients


def get_descriptions(runtime: RuntimeDep) -> DescriptionsService:
    return runtime.descriptions


def get_media(runtime: RuntimeDep) -> MediaService:
    return runtime.media


def get_asset_links(runtime: RuntimeDep) -> AssetLinks | None:
    return runtime.asset_links


JobServiceDep = Annotated[JobService, Depends(get_jobs)]
JobStreamsDep = Annotated[JobStreams, Depends(get_streams)]
AssetServiceDep = Annotated[AssetService, Depends(get_assets)]
CatalogServiceDep = Annotated[CatalogService, Depends(get_catalog)]
ClientServiceDep = Annotated[ClientService, Depends(get_clients)]
DescriptionsServiceDep = Annotated[DescriptionsService, Depends(get_descriptions)]
MediaServiceDep = Annotated[MediaService, Depends(get_media)]
# Signed links to stored files; None unless CONVEYOR_PUBLIC_URL is set.
AssetLinksDep = Annotated[AssetLinks | None, Depends(get_asset_links)]

_bearer = HTTPBearer(auto_error=False, description="An API key from `conveyor keys create`")


async def current_client(
    request: Request,
    clients: ClientServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Client:
    """Who is calling: the ``Authorization: Bearer`` API key, or the local client in open
    mode (no active key, loopback address)."""
    if credentials is not None:
        client = await clients.authenticate(credentials.credentials.strip())
        if client is None:
            raise Unauthorized("invalid or revoked API key")
        return client
    if request.headers.get("authorization"):
        raise Unauthorized("use 'Authorization: Bearer <API key>'")
    if await clients.is_open():
        return LOCAL_CLIENT
    raise Unauthorized("an API key is required: send 'Authorization: Bearer <API key>'")


CurrentClient = Annotated[Client, Depends(current_client)]


_token_or_bearer = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    scheme_name="TokenOrBearer",
    description="`Token <API key>` (Django REST framework's scheme) or `Bearer <API key>`",
)
TOKEN_SCHEMES = ("token", "bearer")


async def token_or_bearer_client(
    clients: ClientServiceDep,
    header: Annotated[str | None, Depends(_token_or_bearer)] = None,
) -> Client:
    """Who is calling, for APIs whose clients speak Django REST framework: the API key as
    ``Authorization: Token <key>`` or ``Bearer <key>``; open mode as for ``CurrentClient``."""
    value = (header or "").strip()
    if value:
        scheme, _, key = value.partition(" ")
        if scheme.lower() not in TOKEN_SCHEMES or not key.strip():
            raise Unauthorized("use 'Authorization: Token <API key>' (or 'Bearer <API key>')")
        client = await clients.authenticate(key.strip())
        if client is None:
            raise Unauthorized("invalid or revoked API key")
        return client
    if await clients.is_open():
        return LOCAL_CLIENT
    raise Unauthorized("an API key is required: send 'Authorization: Token <API key>'")


TokenOrBearerClient = Annotated[Client, Depends(token_or_bearer_client)]
