"""Alembic environment: the target URL comes from the config attribute set by
``conveyor.core.migrate``; all domain tables are imported so autogenerate sees them.

Several nodes may start at once against one fresh PostgreSQL database, each migrating: a
session advisory lock makes them take turns, and whoever comes second reads the version
the first one committed and has nothing left to do. (SQLite files are locked by
``conveyor.core.migrate``.)"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from conveyor.core.schema import metadata

config = context.config

# pg_advisory_lock key: the first 8 bytes of sha256(b"conveyor.migrations"), as a signed int.
MIGRATION_LOCK_KEY = 5148470235855615995


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            locking = connection.dialect.name == "postgresql"
            if locking:
                # Session-level and committed at once: the migration's own transaction
                # starts after the lock is held, so it sees what an earlier holder committed.
                await connection.execute(
                    text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                await connection.commit()
            try:
                await connection.run_sync(_run)
                await connection.commit()
            finally:
                if locking:
                    await connection.rollback()
                    await connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                    await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url") or ""))
