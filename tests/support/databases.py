"""Real databases for tests: a migrated SQLite file per test, and a PostgreSQL database per
test session (truncated between tests). PostgreSQL tests skip with a reason when no server
answers, unless ``CONVEYOR_TEST_POSTGRES=required`` (CI), where they fail instead."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from conveyor.core.db import standalone_engine
from conveyor.core.migrate import upgrade
from conveyor.core.schema import metadata

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
POSTGRES_REQUIRED = os.environ.get("CONVEYOR_TEST_POSTGRES") == "required"


def sqlite_template(directory: Path) -> Path:
    """A migrated database file to copy for each test (migrating once is the slow part)."""
    path = directory / "template.db"
    if not path.exists():
        upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def fresh_sqlite_url(template: Path, directory: Path) -> str:
    path = directory / f"conveyor-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


async def _postgres_answers(url: str) -> str | None:
    engine = standalone_engine(url)
    try:
        async with asyncio.timeout(5):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


def postgres_unavailable_reason() -> str | None:
    return asyncio.run(_postgres_answers(POSTGRES_URL))


def create_postgres_database(*, migrate: bool = True) -> str:
    """Create a private database (migrated unless told not to); returns its URL."""
    name = f"conveyor_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        engine = standalone_engine(POSTGRES_URL)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await engine.dispose()

    asyncio.run(create())
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    if migrate:
        upgrade(url)
    return url


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database

    async def drop() -> None:
        engine = standalone_engine(POSTGRES_URL)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            await engine.dispose()

    asyncio.run(drop())


async def truncate_all(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    engine = standalone_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()
