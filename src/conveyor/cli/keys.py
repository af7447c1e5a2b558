"""API keys: create (shown once), list, revoke."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.app import console, err, fail, keys_app, print_table, with_admin_database
from conveyor.config import get_settings

# ``ClientService.create_key`` stores a key's first 12 characters as its prefix.
PREFIX_LENGTH = 12

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

    async def create(db: Database) -> tuple[str, bool]:
        clients = _clients(db)
        first = not await clients.has_active_keys()
        key, _ = await clients.create_key(
            name, key_name=label, scope="admin" if admin else "client"
        )
        return key, first

    from conveyor.clients.service import LOCAL_CLIENT_NAME

    key, first = with_admin_database(get_settings(), create)
    if first:
        err.print(
            "[yellow]note:[/yellow] this is the first active key, so open mode ends: the "
            "server now refuses requests without a key (a running one within seconds). "
            f"What was made in open mode belongs to the client [bold]{LOCAL_CLIENT_NAME}"
            f"[/bold]; to reach it, create a key for it: conveyor keys create {LOCAL_CLIENT_NAME}",
            highlight=False,
        )
    kind = "Admin API key" if admin else "API key"
    err.print(f"{kind} for client [bold]{name}[/bold] (shown once, keep it safe):")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only)."""

    async def listed(db: Database) -> list[ApiKeyInfo]:
        return list(await _clients(db).list_keys())

    print_table(
        ("id", "client", "name", "prefix", "scope", "created", "last used", "revoked"),
        (
            (
                key.id,
                key.client,
                key.name,
                key.prefix,
                key.scope,
                key.created_at.isoformat(timespec="seconds"),
                key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "",
                key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
            )
            for key in with_admin_database(get_settings(), listed)
        ),
        whole=("id", "prefix"),
    )


def key_reference(text: str) -> str:
    """What ``revoke`` looks up, from what a person pastes: an id or a prefix as ``keys
    list`` shows them, a prefix with the ``…`` other messages add, or the whole key."""
    from conveyor.clients.service import KEY_PREFIX

    text = text.strip().removesuffix("…").removesuffix("...")
    if text.startswith(KEY_PREFIX) and len(text) > PREFIX_LENGTH:
        return text[:PREFIX_LENGTH]
    return text


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id or prefix, as `keys list` shows them")],
) -> None:
    """Revoke a key; requests with it are refused from then on."""
    from conveyor.errors import ConveyorError

    wanted = key_reference(key)
    try:
        revoked = with_admin_database(get_settings(), lambda db: _clients(db).revoke_key(wanted))
    except ConveyorError as exc:
        raise fail(exc.message) from exc
    console.print(f"revoked {revoked.prefix}… of client {revoked.client}")
