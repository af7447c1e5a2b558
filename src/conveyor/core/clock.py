"""Time, injectable.

Domain timestamps come from ``Clock.now()``. Lease arithmetic (heartbeats, ``run_after``)
compares times written by different machines, so it uses the database's clock through
``Clock.sql_now()``; a ``ManualClock`` replaces both in tests so nothing waits for real time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Float, func, literal, literal_column
from sqlalchemy.sql.elements import ColumnElement


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime: ...

    def timestamp(self) -> float: ...

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        """Seconds since the epoch as a SQL expression."""
        ...


class SystemClock:
    """Wall clock here, database clock for SQL."""

    def now(self) -> datetime:
        return utc_now()

    def timestamp(self) -> float:
        return time.time()

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        if dialect == "postgresql":
            return func.cast(func.extract("epoch", func.clock_timestamp()), Float)
        # julianday('now') has sub-millisecond precision, enough for leases.
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._t = start

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, UTC)

    def timestamp(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def sql_now(self, dialect: str) -> ColumnElement[float]:
        return literal(self._t, Float)
