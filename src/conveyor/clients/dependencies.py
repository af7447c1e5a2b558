"""Who is calling: the ``Authorization: Bearer`` API key, or the local client in open mode."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.clients.service import LOCAL_CLIENT, Client, ClientService
from conveyor.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="An API key from `conveyor keys create`")


def client_service(request: Request) -> ClientService:
    service: ClientService = request.app.state.runtime.clients
    return service


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
