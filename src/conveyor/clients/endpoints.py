"""``/v1/keys``: API keys, for admins only (a new key's secret is shown once)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from conveyor.clients.service import ApiKeyInfo, Scope
from conveyor.deps import AdminClient, ClientServiceDep

router = APIRouter(prefix="/v1/keys", tags=["keys"])

_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or invalid API key"},
    403: {"description": "Not an admin key"},
}


class KeyOut(BaseModel):
    id: str
    client: str
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, info: ApiKeyInfo) -> KeyOut:
        return cls(
            id=info.id,
            client=info.client,
            name=info.name,
            prefix=info.prefix,
            scope=info.scope,
            created_at=info.created_at,
            last_used_at=info.last_used_at,
            revoked_at=info.revoked_at,
        )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client: str = Field(min_length=1, max_length=100, description="Client name (created if new)")
    name: str = Field("default", min_length=1, max_length=100, description="A name for the key")
    scope: Scope = "client"


class CreatedKey(KeyOut):
    key: str = Field(description="The key itself; shown this once, stored only as a hash")


@router.get("", response_model=list[KeyOut], summary="Every API key", responses=_ERRORS)
async def list_keys(_admin: AdminClient, clients: ClientServiceDep) -> list[KeyOut]:
    return [KeyOut.of(info) for info in await clients.list_keys()]


@router.post(
    "", response_model=CreatedKey, status_code=201, summary="Create a key", responses=_ERRORS
)
async def create_key(_admin: AdminClient, clients: ClientServiceDep, body: KeyCreate) -> CreatedKey:
    key, info = await clients.create_key(body.client.strip(), key_name=body.name, scope=body.scope)
    return CreatedKey(key=key, **KeyOut.of(info).model_dump())


@router.delete(
    "/{key}",
    response_model=KeyOut,
    summary="Revoke a key (by id or prefix)",
    responses={**_ERRORS, 404: {"description": "No active key with that id or prefix"}},
)
async def revoke_key(
    _admin: AdminClient,
    clients: ClientServiceDep,
    key: Annotated[str, Path(min_length=4, max_length=64)],
) -> KeyOut:
    return KeyOut.of(await clients.revoke_key(key))
