"""Wake-ups inside a process and, on PostgreSQL, across machines.

``Signal`` is an asyncio event that coalesces: many ``notify()`` calls before a waiter runs
wake it once. ``PostgresListener`` holds one dedicated connection that ``LISTEN``s on named
channels and turns each notification into a callback; it reconnects when the server goes
away, and on reconnect fires every callback once, since notifications sent while it was
disconnected are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


class Signal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None) -> bool:
        """Wait for a notification or the timeout; True if notified."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg understands."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresListener:
    def __init__(self, database_url: str, *, reconnect_delay: float = 2.0) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._reconnect_delay = reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        self._callbacks.setdefault(channel, []).append(callback)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pg-listener")
            # Don't block start-up for long if the server is slow; polling covers the gap.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), 5.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _dispatch(self, channel: str, payload: str) -> None:
        for callback in self._callbacks.get(channel, []):
            try:
                callback(payload)
            except Exception:
                log.exception("listener callback for %s failed", channel)

    async def _run(self) -> None:
        import asyncpg

        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in self._callbacks:
                    await conn.add_listener(
                        channel, lambda _c, _pid, ch, payload: self._dispatch(ch, payload)
                    )
                self._connected.set()
                for channel in self._callbacks:
                    self._dispatch(channel, "")
                await lost.wait()
            except asyncio.CancelledError:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
                raise
            except Exception as exc:
                log.warning("LISTEN connection failed (%s); retrying", exc)
            await asyncio.sleep(self._reconnect_delay)
