"""API keys: create (shown once), list, revoke."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from conveyor.cli.app import console, err, fail, keys_app, with_database
from conveyor.config import get_settings

if TYPE_CHECKING:
    from conveyor.clients.service import ApiKeyInfo, ClientService
    from conveyor.core.db import Database


def _clients(db: Database) -> ClientService:
    from conveyor.clients.service import ClientService
    from conveyor.core.clock import SystemClock

    return ClientService(db, SystemClock())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Client name (created if new)")],
    label: Annotated[str, typer.Option(help="A name for this key")] = "default",
    admin: Annotated[
        bool, typer.Option("--admin", help="Also manage providers, keys and the dead queue")
    ] = False,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""

    async def create(db: Database) -> str:
        key, _ = await _clients(db).create_key(
            name, key_name=label, scope="admin" if admin else "client"
        )
        return key

    key = with_database(get_settings(), create)
    kind = "Admin API key" if admin else "API key"
    err.print(f"{kind} for client [bold]{name}[/bold] (shown once, keep it safe):")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only)."""

    async def listed(db: Database) -> list[ApiKeyInfo]:
        return list(await _clients(db).list_keys())

    table = Table("id", "client", "name", "prefix", "scope", "created", "last used", "revoked")
    for key in with_database(get_settings(), listed):
        table.add_row(
            key.id,
            key.client,
            key.name,
            key.prefix,
            key.scope,
            key.created_at.isoformat(timespec="seconds"),
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix")]) -> None:
    """Revoke a key; requests with it are refused from then on."""
    from conveyor.errors import ConveyorError

    try:
        revoked = with_database(get_settings(), lambda db: _clients(db).revoke_key(key))
    except ConveyorError as exc:
        raise fail(exc.message) from exc
    console.print(f"revoked {revoked.prefix}… of client {revoked.client}")
