"""The command tree and what its commands share: output, errors, the server client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console

from conveyor.client import ApiError, Conveyor
from conveyor.config import Settings

if TYPE_CHECKING:
    from conveyor.core.db import Database

T = TypeVar("T")

app = typer.Typer(
    help="Conveyor: a self-hosted generation gateway.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once).", no_args_is_help=True)
jobs_app = typer.Typer(help="Jobs on a running server.", no_args_is_help=True)
queue_app = typer.Typer(help="The work queue: dead tasks and requeueing.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalogue of a running server.", no_args_is_help=True)
providers_app = typer.Typer(
    help="Providers: list, set up, add as data, test.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
app.add_typer(queue_app, name="queue")
app.add_typer(models_app, name="models")
app.add_typer(providers_app, name="providers")

console = Console()
err = Console(stderr=True)

UrlOption = Annotated[str, typer.Option("--url", envvar="CONVEYOR_URL", help="Server base URL")]
KeyOption = Annotated[str | None, typer.Option("--key", envvar="CONVEYOR_API_KEY", help="API key")]


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CONVEYOR_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def migrate_database(settings: Settings) -> None:
    from conveyor.core.migrate import upgrade

    upgrade(settings.resolved_database_url)


def with_database(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, migrate: bool = True
) -> T:
    """Migrate (unless the caller just did), then open the database for one piece of admin
    work and close it again."""
    if migrate:
        migrate_database(settings)

    async def run() -> T:
        from conveyor.core.db import Database

        db = Database(settings.resolved_database_url, pool_size=1)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def api_client(url: str, key: str | None) -> Conveyor:
    return Conveyor(url, api_key=key)


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        raise fail(f"{exc.status} {exc.code}: {exc.message}") from exc
    except httpx.TransportError as exc:
        raise fail(f"cannot reach the server: {exc}") from exc
    except OSError as exc:
        raise fail(f"cannot read or write a file: {exc}") from exc


def parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise fail(f"--option takes NAME=VALUE, got {pair!r}")
        try:
            options[name] = json.loads(raw)
        except ValueError:
            options[name] = raw
    return options
