"""One ``Database`` object for SQLite and PostgreSQL, written to for short transactions only.

SQLite allows one writer at a time. Within a process every write goes through one writer
connection guarded by an ``asyncio.Lock`` and starts with ``BEGIN IMMEDIATE``, so a
transaction never has to upgrade its lock half-way (a deferred transaction that upgrades
gets ``SQLITE_BUSY`` at once, ignoring ``busy_timeout``). Between processes ``busy_timeout``
queues writers. Reads use a separate pool: WAL lets them run beside the writer.

PostgreSQL needs none of that: ``write()`` and ``read()`` are plain pooled transactions.

Code that writes registers ``after_commit`` callbacks on the connection (publishing events,
waking workers); they run only if the transaction commits, so nothing escapes a rollback.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_READERS = 4


@dataclass
class _Transaction:
    hooks: list[Callable[[], None]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


_TRANSACTIONS: weakref.WeakKeyDictionary[AsyncConnection, _Transaction] = (
    weakref.WeakKeyDictionary()
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # isolation_level=None: the driver issues no implicit BEGIN; we issue our own below.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Engines plus the transaction discipline described in the module docstring."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = make_url(url)
        backend = self.url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
        self.dialect: Dialect = "sqlite" if backend == "sqlite" else "postgresql"
        self._write_lock = asyncio.Lock()
        if self.dialect == "sqlite":
            self._prepare_sqlite_path()
            # Each reader is a thread with its own page cache; reads are short, a few suffice.
            readers = min(pool_size, SQLITE_READERS)
            self.engine = self._sqlite_engine(begin="BEGIN", echo=echo, pool_size=readers)
            self._writer = self._sqlite_engine(begin="BEGIN IMMEDIATE", echo=echo, pool_size=1)
        else:
            self.engine = create_async_engine(
                self.url,
                echo=echo,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
            )
            self._writer = self.engine

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _prepare_sqlite_path(self) -> None:
        database = self.url.database
        if not database or database == ":memory:":
            raise ValueError("SQLite needs a file path: in-memory databases can't be shared")
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    def _sqlite_engine(self, *, begin: str, echo: bool, pool_size: int) -> AsyncEngine:
        engine = create_async_engine(
            self.url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=0,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, record)

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A short write transaction; commits on success, then runs after-commit hooks."""
        if self.is_sqlite:
            await self._write_lock.acquire()
        try:
            async with self._writer.connect() as conn:
                # Per-transaction state lives beside the connection object, never in it: after
                # a cancelled statement the connection may be invalid, and touching it again
                # would try to reconnect from code that can't do I/O.
                transaction = _Transaction()
                _TRANSACTIONS[conn] = transaction
                try:
                    async with conn.begin():
                        yield conn
                finally:
                    _TRANSACTIONS.pop(conn, None)
                hooks = transaction.hooks
        finally:
            if self.is_sqlite:
                self._write_lock.release()
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("after-commit hook failed")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot (a transaction that is rolled back at the end)."""
        async with self.engine.connect() as conn, conn.begin() as tx:
            try:
                yield conn
            finally:
                await tx.rollback()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._writer is not self.engine:
            await self._writer.dispose()


def after_commit(conn: AsyncConnection, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the transaction ``conn`` is in commits; dropped on rollback."""
    transaction = _TRANSACTIONS.get(conn)
    if transaction is None:
        raise RuntimeError("after_commit needs a connection from Database.write()")
    transaction.hooks.append(callback)


def tx_state(conn: AsyncConnection) -> dict[str, Any]:
    """Scratch space that lives exactly as long as the current ``Database.write`` transaction.

    Hooks must not touch ``conn`` itself: they run after the connection went back to the pool.
    """
    transaction = _TRANSACTIONS.get(conn)
    if transaction is None:
        raise RuntimeError("tx_state needs a connection from Database.write()")
    return transaction.state


# SQLSTATEs that say the server is away, not that the statement was wrong: class 08
# (connection exception), 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now.
_SERVER_AWAY_STATES = ("57P01", "57P02", "57P03")
_DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.")


def database_unreachable(exc: BaseException) -> bool:
    """True if ``exc`` means the database server is away (stopped, restarting, the
    connection lost): the same work may succeed in a moment, unlike a statement's error."""
    if isinstance(exc, BaseExceptionGroup):
        # A task group's (a streaming response's): unreachable if every failure says so.
        return all(database_unreachable(inner) for inner in exc.exceptions)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _SERVER_AWAY_STATES):
            return True
        # A refused or reset connection reaches us as a bare OSError; only one raised by the
        # database driver is about the database.
        if isinstance(current, OSError) and _raised_by_driver(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


def database_busy_or_away(exc: BaseException) -> bool:
    """True if the same write may well succeed in a moment: the server is away
    (``database_unreachable``), no pooled connection came free in time, or SQLite's file
    stayed locked past its busy timeout."""
    if database_unreachable(exc) or isinstance(exc, sqlalchemy.exc.TimeoutError):
        return True
    return isinstance(exc, sqlalchemy.exc.OperationalError) and "database is locked" in str(exc)


def _raised_by_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


def standalone_engine(url: str) -> AsyncEngine:
    """An engine without pooling, for one-off admin work such as migrations."""
    return create_async_engine(url, poolclass=NullPool)
