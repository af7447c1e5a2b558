"""The command tree and what its commands share: output, errors, the server client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import httpx
import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from conveyor.client import ApiError, Conveyor
from conveyor.config import Settings, get_settings

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

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="CONVEYOR_URL",
        help="Server base URL (default: where `conveyor serve` listens, http://CONVEYOR_HOST:CONVEYOR_PORT)",
    ),
]
KeyOption = Annotated[str | None, typer.Option("--key", envvar="CONVEYOR_API_KEY", help="API key")]


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CONVEYOR_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def fail(message: str, code: int = 1) -> typer.Exit:
    # The message is text, not markup: a model title or path may hold brackets.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _flag_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    """A flag takes no value, so its help shows no type (typer 0.29 shows ``<bool>``)."""
    if self.is_flag and not self.count:
        return None
    return _option_type(self, ctx)


# Why a patch: typer builds every option itself (``--help`` included), so no option class
# can be passed in; plain click help already omits a flag's type, and this does the same.
_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]


def server_url(url: str | None) -> str:
    """The server the command talks to: ``--url``/``CONVEYOR_URL``, else where ``conveyor
    serve`` binds with the same settings (``CONVEYOR_HOST``/``CONVEYOR_PORT``)."""
    from conveyor.cli.banner import listen_url

    return url.rstrip("/") if url else listen_url(get_settings())


def database_name(settings: Settings) -> str:
    """The database as a person recognises it: the SQLite file, or the URL without password."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database or ":memory:").resolve()) if url.database else ":memory:"
    return url.render_as_string(hide_password=True)


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


async def _has_schema(settings: Settings) -> bool:
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    return "alembic_version" in tables


def with_admin_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """``with_database`` for admin commands (keys, queue, providers): they work on the
    server's database, so one with no schema is a wrong setting, never a database to create
    (a key in it would be a key no server knows)."""
    url = make_url(settings.resolved_database_url)
    sqlite_file = url.database if url.get_backend_name() == "sqlite" else None
    missing = (
        sqlite_file is not None and sqlite_file != ":memory:" and not Path(sqlite_file).exists()
    )
    try:
        empty = missing or not asyncio.run(_has_schema(settings))
    except (OSError, SQLAlchemyError) as exc:
        raise fail(f"cannot open the database {database_name(settings)}: {exc}") from exc
    if empty:
        raise fail(
            f"the database {database_name(settings)} "
            + ("does not exist" if missing else "has no Conveyor schema")
            + ": point CONVEYOR_DATABASE_URL (or CONVEYOR_DATA_DIR) at the server's database, "
            "or create it with `conveyor migrate` (`conveyor serve` does too)"
        )
    return with_database(settings, work)


def api_client(url: str | None, key: str | None) -> Conveyor:
    return Conveyor(server_url(url), api_key=key)


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        raise fail(f"{exc.status} {exc.code}: {exc.message}") from exc
    except httpx.TransportError as exc:
        raise fail(
            f"cannot reach the server at {_origin(exc)} ({type(exc).__name__}: {exc}); "
            "is `conveyor serve` running there? Set --url or CONVEYOR_URL "
            "(or CONVEYOR_HOST/CONVEYOR_PORT as `serve` was given)"
        ) from exc
    except OSError as exc:
        raise fail(f"cannot read or write a file: {exc}") from exc


def _origin(exc: httpx.TransportError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # an error raised before any request was built
        return "the server URL"
    return f"{url.scheme}://{url.netloc.decode()}"


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], *, whole: Collection[str] = ("id",)
) -> None:
    """A table whose ``whole`` columns (ids, names someone copies) are never cut or wrapped,
    and whose cells are shown as written: ``FLUX.1 [schnell]`` is not rich markup."""
    cells = [[Text("" if value is None else str(value)) for value in row] for row in rows]
    table = Table(*columns)
    for index, column in enumerate(table.columns):
        if columns[index] in whole:
            column.no_wrap = True
            column.min_width = max([len(row[index]) for row in cells] + [len(columns[index])])
        else:
            column.overflow = "fold"
    for row in cells:
        table.add_row(*row)
    console.print(table)


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
