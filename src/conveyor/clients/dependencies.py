"""Who is calling: the ``Authorization: Bearer`` API key, or the local client in open mode.

``CurrentClient`` is any caller; ``AdminClient`` is a caller whose key has the ``admin``
scope (in open mode the local client is admin). A client key on an admin route gets 403
naming the route and how to get an admin key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.clients.service import LOCAL_CLIENT, Client, ClientService
from conveyor.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="An API key from `conveyor keys create`")


def client_service(request: Request) -> ClientService:
    service: ClientService = request.app.state.runtime.clients
    return service


ClientServiceDep = Annotated[ClientService, Depends(client_service)]


async def current_client(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Client:
    service = client_service(request)
    if credentials is not None:
        client = await service.authenticate(credentials.credentials.strip())
        if client is None:
            raise Unauthorized("invalid or revoked API key")
        return client
    if request.headers.get("authorization"):
        raise Unauthorized("use 'Authorization: Bearer <API key>'")
    if await service.is_open():
        return LOCAL_CLIENT
    raise Unauthorized("an API key is required: send 'Authorization: Bearer <API key>'")


CurrentClient = Annotated[Client, Depends(current_client)]


async def admin_client(request: Request, client: CurrentClient) -> Client:
    if not client.is_admin:
        raise Forbidden(
            f"{request.method} {request.url.path} needs an admin API key; the key of client "
            f"{client.name!r} is a client key (an operator creates one with "
            "'conveyor keys create NAME --admin')",
            code="ADMIN_KEY_REQUIRED",
        )
    return client


AdminClient = Annotated[Client, Depends(admin_client)]
