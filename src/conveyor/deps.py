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
from starlette.datastructures import FormData

from conveyor.assets.links import AssetLinks
from conveyor.assets.service import AssetService
from conveyor.catalog.service import CatalogService
from conveyor.clients.service import LOCAL_CLIENT, Client, ClientService
from conveyor.compat.boxes.service import BoxService
from conveyor.compat.boxes.settling import BoxSettler
from conveyor.compat.descriptions.service import DescriptionsService
from conveyor.compat.media.service import MediaService
from conveyor.compat.photos.service import PhotosService
from conveyor.config import Settings
from conveyor.core.db import Database
from conveyor.errors import Forbidden, Unauthorized
from conveyor.execution.callbacks import CallbackReceiver
from conveyor.jobs.service import JobService
from conveyor.jobs.streams import JobStreams
from conveyor.runtime import Runtime
from conveyor.system.service import OperatorService
from conveyor.web.routing import SameSiteBounce
from conveyor.web.service import ConsoleService
from conveyor.web.session import (
    COOKIE_NAME,
    CSRF_FIELD,
    ConsoleSession,
    CsrfRefused,
    SessionCodec,
    SignInRequired,
    Viewer,
)
from conveyor.web.thumbnails import Thumbnails


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


def get_photos(runtime: RuntimeDep) -> PhotosService:
    return runtime.photos


def get_asset_links(runtime: RuntimeDep) -> AssetLinks | None:
    return runtime.asset_links


def get_callback_receiver(runtime: RuntimeDep) -> CallbackReceiver:
    return runtime.callbacks


def get_boxes(runtime: RuntimeDep) -> BoxService:
    return runtime.boxes


def get_box_settler(runtime: RuntimeDep) -> BoxSettler:
    return runtime.box_settler


JobServiceDep = Annotated[JobService, Depends(get_jobs)]
JobStreamsDep = Annotated[JobStreams, Depends(get_streams)]
AssetServiceDep = Annotated[AssetService, Depends(get_assets)]
CatalogServiceDep = Annotated[CatalogService, Depends(get_catalog)]
ClientServiceDep = Annotated[ClientService, Depends(get_clients)]
DescriptionsServiceDep = Annotated[DescriptionsService, Depends(get_descriptions)]
# Signs and checks time-limited links to stored files (``/v1/assets/{id}/signed``).


MediaServiceDep = Annotated[MediaService, Depends(get_media)]
PhotosServiceDep = Annotated[PhotosService, Depends(get_photos)]
# Signed links to stored files; None unless CONVEYOR_PUBLIC_URL is set.
AssetLinksDep = Annotated[AssetLinks | None, Depends(get_asset_links)]
CallbackReceiverDep = Annotated[CallbackReceiver, Depends(get_callback_receiver)]
BoxServiceDep = Annotated[BoxService, Depends(get_boxes)]
BoxSettlerDep = Annotated[BoxSettler, Depends(get_box_settler)]

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


async def admin_client(request: Request, client: CurrentClient) -> Client:
    """A caller whose key has the ``admin`` scope (in open mode the local client is one);
    a client key gets 403 naming the route and how to get an admin key."""
    if not client.is_admin:
        raise Forbidden(
            f"{request.method} {request.url.path} needs an admin API key; the key of client "
            f"{client.name!r} is a client key (an operator creates one with "
            "'conveyor keys create NAME --admin')",
            code="ADMIN_KEY_REQUIRED",
        )
    return client


AdminClient = Annotated[Client, Depends(admin_client)]


# -- the web console ---------------------------------------------------------------------


def get_console(runtime: RuntimeDep) -> ConsoleService:
    return runtime.console


def get_operator(runtime: RuntimeDep) -> OperatorService:
    return runtime.operator


def get_thumbnails(runtime: RuntimeDep) -> Thumbnails:
    return runtime.thumbnails


def get_sessions(runtime: RuntimeDep) -> SessionCodec:
    return runtime.sessions


ConsoleServiceDep = Annotated[ConsoleService, Depends(get_console)]
OperatorServiceDep = Annotated[OperatorService, Depends(get_operator)]
ThumbnailsDep = Annotated[Thumbnails, Depends(get_thumbnails)]
SessionCodecDep = Annotated[SessionCodec, Depends(get_sessions)]


async def console_session(request: Request, sessions: SessionCodecDep) -> ConsoleSession:
    """The browser's console session, or a new one (its cookie is set with the answer)."""
    session = sessions.decode(request.cookies.get(COOKIE_NAME))
    if session is not None:
        return session
    if request.headers.get("sec-fetch-site") == "cross-site" and request.method == "GET":
        # The SameSite=Strict cookie was withheld, not missing: a new one would replace it.
        raise SameSiteBounce("continue to the console")
    session = sessions.open_session()
    request.state.console_cookie = (sessions.encode(session), sessions.seconds_left(session))
    return session


ConsoleSessionDep = Annotated[ConsoleSession, Depends(console_session)]


async def console_viewer(
    request: Request,
    session: ConsoleSessionDep,
    sessions: SessionCodecDep,
    clients: ClientServiceDep,
) -> Viewer:
    """Who looks at the console: the client of the key the session was signed in with
    (while that key is active), else the local client in open mode; else sign in first."""
    token = sessions.csrf_token(session)
    viewer: Viewer | None = None
    if session.key_id is not None:
        client = await clients.client_of_key(session.key_id)
        if client is not None:
            viewer = Viewer(client, session, token, signed_in=True)
    if viewer is None and await clients.is_open():
        viewer = Viewer(LOCAL_CLIENT, session, token, signed_in=False)
    if viewer is None:
        raise SignInRequired("sign in with an API key to use the console")
    request.state.console_viewer = viewer
    return viewer


ConsoleViewer = Annotated[Viewer, Depends(console_viewer)]


async def console_admin(viewer: ConsoleViewer) -> Viewer:
    if not viewer.admin:
        raise Forbidden("only an administrator may do this", code="ADMIN_ONLY")
    return viewer


ConsoleAdmin = Annotated[Viewer, Depends(console_admin)]


async def console_form(
    request: Request, session: ConsoleSessionDep, sessions: SessionCodecDep
) -> FormData:
    """The posted form, once its CSRF token proves it came from a page of this console."""
    form = await request.form()
    if not sessions.csrf_ok(session, form.get(CSRF_FIELD)):
        raise CsrfRefused(
            "this form has expired or did not come from this console; "
            "reload the page and send it again"
        )
    return form


ConsoleForm = Annotated[FormData, Depends(console_form)]


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
