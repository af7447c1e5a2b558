"""Clients and API keys.

Each key has a scope: ``client`` keys reach their client's own work; ``admin`` keys also
change what the server can call (providers) and who may call it (keys), and see the dead
queue. A key is ``cvk_`` + 32 random bytes in URL-safe base64; only its SHA-256 is stored (a key
has 256 bits of entropy, so a fast hash is enough; a slow KDF would only slow every request).
Lookups go by hash; the final comparison is constant-time anyway. A deployment with no
active key runs open, as the built-in ``local`` client, which ``conveyor serve`` allows only
on a loopback address; that local client acts as admin (whoever reaches a loopback-only
server already runs it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.clients.models import api_keys, clients
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.core.ids import new_id
from conveyor.errors import Conflict, NotFound, ValidationFailed

KEY_PREFIX = "cvk_"
LOCAL_CLIENT_ID = "00000000-0000-0000-0000-000000000000"
LOCAL_CLIENT_NAME = "local"
# How long the "does any key exist" answer is trusted before asking the database again.
_OPEN_MODE_TTL = 5.0
_USE_NOTE_INTERVAL = 60.0

Scope = Literal["client", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)


@dataclass(frozen=True, slots=True)
class Client:
    """Who is calling, and with which scope (that of the key used)."""

    id: str
    name: str
    scope: Scope = "client"

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: str
    client: str
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


LOCAL_CLIENT = Client(LOCAL_CLIENT_ID, LOCAL_CLIENT_NAME, "admin")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ClientService:
    def __init__(self, db: Database, clock: Clock, *, open_allowed: bool = True) -> None:
        self.db = db
        self.clock = clock
        self.open_allowed = open_allowed
        self._open_checked_at = -_OPEN_MODE_TTL
        self._has_keys = False
        self._last_noted: dict[str, float] = {}

    async def ensure_client(self, conn: AsyncConnection, name: str) -> Client:
        row = (await conn.execute(select(clients).where(clients.c.name == name))).first()
        if row is not None:
            return Client(row.id, row.name)
        client_id = LOCAL_CLIENT_ID if name == LOCAL_CLIENT_NAME else new_id()
        await conn.execute(
            insert(clients).values(id=client_id, name=name, created_at=self.clock.now())
        )
        return Client(client_id, name)

    async def ensure_local_client(self) -> None:
        async with self.db.write() as conn:
            await self.ensure_client(conn, LOCAL_CLIENT_NAME)

    async def create_key(
        self, client_name: str, *, key_name: str = "default", scope: Scope = "client"
    ) -> tuple[str, ApiKeyInfo]:
        """Create a key for ``client_name`` (creating the client too); returns the key once."""
        if scope not in SCOPES:
            raise ValidationFailed(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        async with self.db.write() as conn:
            client = await self.ensure_client(conn, client_name)
            key_id = new_id()
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    client_id=client.id,
                    name=key_name,
                    prefix=key[:12],
                    key_hash=hash_key(key),
                    scope=scope,
                    created_at=now,
                )
            )
        self._open_checked_at = -_OPEN_MODE_TTL
        return key, ApiKeyInfo(key_id, client.name, key_name, key[:12], scope, now, None, None)

    async def list_keys(self) -> list[ApiKeyInfo]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(api_keys, clients.c.name.label("client_name"))
                .join(clients, clients.c.id == api_keys.c.client_id)
                .order_by(api_keys.c.created_at)
            )
            return [
                ApiKeyInfo(
                    r.id,
                    r.client_name,
                    r.name,
                    r.prefix,
                    r.scope,
                    r.created_at,
                    r.last_used_at,
                    r.revoked_at,
                )
                for r in rows
            ]

    async def revoke_key(self, key_id_or_prefix: str) -> ApiKeyInfo:
        keys = [
            k
            for k in await self.list_keys()
            if k.revoked_at is None and (k.id == key_id_or_prefix or k.prefix == key_id_or_prefix)
        ]
        if not keys:
            raise NotFound(f"no active key with id or prefix {key_id_or_prefix!r}")
        if len(keys) > 1:
            raise Conflict(f"{key_id_or_prefix!r} matches {len(keys)} keys; use the key id")
        now = self.clock.now()
        async with self.db.write() as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == keys[0].id).values(revoked_at=now)
            )
        self._open_checked_at = -_OPEN_MODE_TTL
        return dataclasses.replace(keys[0], revoked_at=now)

    async def authenticate(self, key: str) -> Client | None:
        """The client owning an active key, or None."""
        found = await self.sign_in(key)
        return found[0] if found is not None else None

    async def sign_in(self, key: str) -> tuple[Client, str] | None:
        """The client owning an active key and the key's id (a console session keeps the
        id, never the key), or None."""
        digest = hash_key(key)
        row = await self._active_key(api_keys.c.key_hash == digest)
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        await self._note_use(row.id)
        return _client(row), row.id

    async def client_of_key(self, key_id: str) -> Client | None:
        """The client of the key with this id while the key is active (revoking the key
        ends every console session signed in with it)."""
        row = await self._active_key(api_keys.c.id == key_id)
        return _client(row) if row is not None else None

    async def _active_key(self, which: ColumnElement[bool]) -> Any:
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(
                        api_keys.c.id,
                        api_keys.c.key_hash,
                        api_keys.c.scope,
                        clients.c.id.label("cid"),
                        clients.c.name,
                    )
                    .join(clients, clients.c.id == api_keys.c.client_id)
                    .where(
                        which,
                        api_keys.c.revoked_at.is_(None),
                        clients.c.disabled_at.is_(None),
                    )
                )
            ).first()

    async def _note_use(self, key_id: str) -> None:
        """Record when a key was last used, at most once a minute per key and process."""
        now = time.monotonic()
        if now - self._last_noted.get(key_id, -_USE_NOTE_INTERVAL) < _USE_NOTE_INTERVAL:
            return
        self._last_noted[key_id] = now
        async with self.db.write() as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(last_used_at=self.clock.now())
            )

    async def has_active_keys(self) -> bool:
        now = time.monotonic()
        if now - self._open_checked_at >= _OPEN_MODE_TTL:
            async with self.db.read() as conn:
                active = await conn.scalar(
                    select(func.count())
                    .select_from(api_keys)
                    .where(api_keys.c.revoked_at.is_(None))
                )
            self._has_keys = bool(active)
            self._open_checked_at = now
        return self._has_keys

    async def is_open(self) -> bool:
        """True while no active key exists and open mode is allowed here (a loopback
        address or ``--insecure``): every request then acts as the local client. Revoking
        the last key of an exposed server never opens it."""
        return self.open_allowed and not await self.has_active_keys()


def _client(row: Any) -> Client:
    return Client(row.cid, row.name, "admin" if row.scope == "admin" else "client")
