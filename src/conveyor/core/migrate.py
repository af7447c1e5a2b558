"""Apply Alembic migrations programmatically (``conveyor migrate``, start-up, tests).

Every process that serves or works migrates at start, so two may do it at once: on
PostgreSQL the migration environment takes an advisory lock; a SQLite file is migrated
under an exclusive lock on a file beside it (``<database>.migrate-lock``).
"""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("conveyor") / "migrations"))
    # ConfigParser interpolation would choke on %-escapes in URLs.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking; runs its own event loop, so call it from a thread inside async code."""
    url = make_url(database_url)
    sqlite_file = None
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        sqlite_file = Path(url.database)
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(sqlite_file) if sqlite_file is not None else nullcontext():
        command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, database_url, revision)


@contextmanager
def _file_lock(database: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``database`` (SQLite's own locks do not cover DDL the
    driver runs outside a transaction)."""
    with (database.parent / f"{database.name}.migrate-lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
