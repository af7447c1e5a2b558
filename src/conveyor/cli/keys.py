"""API keys: create (shown once), list, revoke."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from conveyor.cli.app import (
    console,
    err,
    fail,
    keys_app,
    migrate_database,
)
from conveyor.config import Settings, get_settings


def _client_service(settings: Settings) -> Any:
    from conveyor.clients.service import ClientService
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database

    return ClientService(Database(settings.resolved_database_url, pool_size=1), SystemClock())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Client name (created if new)")],
    label: Annotated[str, typer.Option(help="A name for this key")] = "default",
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    settings = get_settings()
    migrate_database(settings)

    async def run() -> str:
        service = _client_service(settings)
        try:
            key, _ = await service.create_key(name, key_name=label)
            return str(key)
        finally:
            await service.db.dispose()

    key = asyncio.run(run())
    err.print(f"API key for client [bold]{name}[/bold] (shown once, keep it safe):")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only)."""
    settings = get_settings()
    migrate_database(settings)

    async def run() -> list[Any]:
        service = _client_service(settings)
        try:
            return list(await service.list_keys())
        finally:
            await service.db.dispose()

    table = Table("id", "client", "name", "prefix", "created", "last used", "revoked")
    for key in asyncio.run(run()):
        table.add_row(
            key.id,
            key.client,
            key.name,
            key.prefix,
            key.created_at.isoformat(timespec="seconds"),
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix")]) -> None:
    """Revoke a key; requests with it are refused from then on."""
    from conveyor.errors import ConveyorError

    settings = get_settings()
    migrate_database(settings)

    async def run() -> Any:
        service = _client_service(settings)
        try:
            return await service.revoke_key(key)
        finally:
            await service.db.dispose()

    try:
        revoked = asyncio.run(run())
    except ConveyorError as exc:
        raise fail(exc.message) from exc
    console.print(f"revoked {revoked.prefix}… of client {revoked.client}")
