"""The process pool local engines run in, so CPU-bound work never blocks the event loop.

Each limiter name (one per engine) has its own semaphore: a burst of background removals
cannot take every process away from speech. The pool uses ``spawn`` so children start
clean (no inherited event loop or sockets); engines load their models once per child and
keep them warm. The pool is created at the first call, so a worker that never runs a local
engine never starts its processes. A child that dies (out of memory, a crashing native
library) breaks the pool: it is rebuilt and the call fails with ``EngineProcessDied``, a
retryable error, so the item runs again in a fresh process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from conveyor.core.time_budget import waiting_turn
from conveyor.providers.local.engine import EngineProcessDied

log = logging.getLogger(__name__)

T = TypeVar("T")


class EnginePool:
    """Implements ``conveyor.providers.base.CpuRunner`` over a spawn process pool."""

    def __init__(self, size: int, *, limits: dict[str, int] | None = None) -> None:
        self.size = max(1, size)
        self._limits = dict(limits or {})
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.size, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def _semaphore(self, limiter: str) -> asyncio.Semaphore:
        if limiter not in self._semaphores:
            self._semaphores[limiter] = asyncio.Semaphore(self._limits.get(limiter, self.size))
        return self._semaphores[limiter]

    async def run(self, limiter: str, fn: Callable[..., T], /, *args: Any) -> T:
        semaphore = self._semaphore(limiter)
        # Waiting for a free process is not work: an item's time budget does not count it.
        with waiting_turn():
            await semaphore.acquire()
        try:
            loop = asyncio.get_running_loop()
            executor = self._executor()
            try:
                return await loop.run_in_executor(executor, fn, *args)
            except BrokenProcessPool as exc:
                # Several calls may see the same broken pool; only the first rebuilds it.
                if self._pool is executor:
                    log.error("a local engine process died; rebuilding the pool")
                    self._pool = None
                    executor.shutdown(wait=False, cancel_futures=True)
                raise EngineProcessDied(
                    "a local engine process died while this call was queued or running",
                    provider="local",
                ) from exc
        finally:
            semaphore.release()

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
