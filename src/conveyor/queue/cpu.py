"""A process pool for CPU-bound work, so engines never block the event loop.

Each limiter name (one per engine) has its own semaphore: a burst of background removals
cannot take every process away from speech. The pool uses ``spawn`` so children start
clean (no inherited event loop or sockets); engines load their models once per child and
keep them warm. A child that dies (out of memory, a crashing native library) breaks the
pool; it is rebuilt and the call fails with a retryable error.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class CpuPoolBroken(RuntimeError):
    """A pool process died while running the call; retrying may succeed."""


class ProcessPoolRunner:
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
        async with self._semaphore(limiter):
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._executor(), fn, *args)
            except BrokenProcessPool as exc:
                log.error("a CPU pool process died; rebuilding the pool")
                broken, self._pool = self._pool, None
                if broken is not None:
                    broken.shutdown(wait=False, cancel_futures=True)
                raise CpuPoolBroken("a worker process died while running the engine") from exc

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
