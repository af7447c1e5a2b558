"""Background chores that run every few seconds for the life of a process.

A chore that fails is logged and tried again next time. A chore cancelled mid-way may
surface as some other exception (a driver cleaning up after the cancelled statement); the
loop still stops then, so shutting down never hangs on a loop that swallowed its cancel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def cancelling() -> bool:
    """True if the current task has been asked to stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def every(interval: float, chore: Callable[[], Awaitable[object]], *, name: str) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await chore()
        except Exception:
            if cancelling():
                raise asyncio.CancelledError() from None
            log.exception("%s failed; trying again in %.0f s", name, interval)
