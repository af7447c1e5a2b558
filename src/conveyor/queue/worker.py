"""The worker loop: claim due tasks, run each in its own coroutine, report the outcome.

Up to ``concurrency`` tasks run at once in one process; a task that waits on a provider
holds a coroutine (a couple of KB), never a thread. The loop claims in batches, then sleeps
until an enqueue wakes it (in-process signal, or ``LISTEN/NOTIFY`` on PostgreSQL), a slot
frees up, or ``poll_interval`` passes. A heartbeat loop keeps the worker's row fresh and a
sweeper (one per cluster, under a lease) requeues work of workers that went silent.

A handler may *park* its task (raise ``TaskParked``): the task stays claimed by this worker
and counts as in flight, but no coroutine holds it — whoever the handler handed it to (e.g.
a poll scheduler waiting on a provider) calls ``resume`` to run the handler again, with a
``note`` for it. A waiting task then costs a few hundred bytes instead of a coroutine chain.

Fair share: tasks carry a ``fair_key`` (whose work it is). A worker keeps a reserve of its
slots (``fair_reserve``, a fraction of ``concurrency``) that no key already holding that many
tasks may take: one client's batch of thousands never leaves another client's request
waiting for a slot; within what is claimable, higher ``priority`` goes first.

Stopping is graceful: claiming stops, running tasks get ``shutdown_grace`` seconds, the rest
are cancelled and their tasks — parked ones too — released without counting an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.core.db import Database
from conveyor.core.ids import new_id
from conveyor.core.notify import Signal
from conveyor.core.periodic import every
from conveyor.queue import metrics
from conveyor.queue.errors import LostTask, TaskParked, retry_decision
from conveyor.queue.models import Task
from conveyor.queue.repository import QueueRepository
from conveyor.queue.retry import RetryPolicy

log = logging.getLogger(__name__)

Handler = Callable[["TaskContext"], Awaitable[None]]
DeadHook = Callable[[AsyncConnection, Task, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    name: str
    fn: Handler
    # Runs in the transaction that buries the task, so the domain can record the failure.
    on_dead: DeadHook | None = None
    timeout: float | None = None


class TaskRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, HandlerSpec] = {}

    def register(
        self,
        name: str,
        fn: Handler,
        *,
        on_dead: DeadHook | None = None,
        timeout: float | None = None,
    ) -> None:
        if name in self._handlers:
            raise ValueError(f"handler {name!r} registered twice")
        self._handlers[name] = HandlerSpec(name, fn, on_dead, timeout)

    def get(self, name: str) -> HandlerSpec | None:
        return self._handlers.get(name)


@dataclass(slots=True)
class TaskContext:
    """What a handler sees: its task, and a way to finish it inside its own transaction."""

    task: Task
    worker: Worker
    completed: bool = False
    # What the resumer of a parked task passed to ``Worker.resume`` (None on a first run).
    note: Any = None

    @property
    def payload(self) -> dict[str, Any]:
        return self.task.payload

    @property
    def db(self) -> Database:
        return self.worker.db

    async def fence(self, conn: AsyncConnection) -> None:
        """In the caller's transaction, check this worker still owns the task (``LostTask``
        if not): do it before anything that must not happen twice, such as paying."""
        await self.worker.repo.assert_owned(conn, self.task)

    async def complete(self, conn: AsyncConnection) -> None:
        """Finish the task in the caller's transaction (fenced: raises ``LostTask``)."""
        await self.worker.repo.complete(conn, self.task)
        self.completed = True


@dataclass
class WorkerConfig:
    concurrency: int = 1000
    claim_batch: int = 50
    poll_interval: float = 1.0
    heartbeat_interval: float = 5.0
    stale_after: float = 30.0
    sweep_interval: float = 15.0
    shutdown_grace: float = 20.0
    # Share of the slots kept for keys (clients) that hold fewer than that many tasks.
    fair_reserve: float = 0.1
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


class Worker:
    def __init__(
        self,
        db: Database,
        repo: QueueRepository,
        registry: TaskRegistry,
        config: WorkerConfig,
        *,
        wakeup: Signal | None = None,
    ) -> None:
        self.db = db
        self.repo = repo
        self.registry = registry
        self.config = config
        self.id = new_id()
        self.wakeup = wakeup or Signal()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._parked: dict[int, Task] = {}
        self._by_key: Counter[str] = Counter()
        self._slot_freed = Signal()
        self._stopping = asyncio.Event()
        self._shutting_down = False
        self._unreported: list[Callable[[], Awaitable[None]]] = []
        self.started = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._running) + len(self._parked)

    def is_parked(self, task_id: int) -> bool:
        return task_id in self._parked

    def resume(self, task_id: int, note: Any = None) -> bool:
        """Run a parked task's handler again with ``note``; False if the task is not parked
        here any more (stopped, or given up for dead and claimed elsewhere)."""
        if self._stopping.is_set():
            return False  # stopping: parked tasks are released, not run again
        task = self._parked.pop(task_id, None)
        if task is None:
            return False
        self._start(task, note)
        return True

    def stop(self) -> None:
        """Stop claiming and shut down gracefully (see the module docstring)."""
        self._stopping.set()
        self.wakeup.notify()
        self._slot_freed.notify()

    async def run(self) -> None:
        async with self.db.write() as conn:
            await self.repo.register_worker(
                conn, self.id, name=self.config.name, concurrency=self.config.concurrency
            )
        background = [
            asyncio.create_task(
                every(self.config.heartbeat_interval, self._heartbeat, name="heartbeat"),
                name="worker-heartbeat",
            ),
            asyncio.create_task(
                every(self.config.sweep_interval, self._sweep, name="sweep"),
                name="worker-sweeper",
            ),
        ]
        self.started.set()
        log.info("worker %s (%s) started", self.id, self.config.name)
        try:
            await self._claim_loop()
        finally:
            await self._drain()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                async with self.db.write() as conn:
                    await self.repo.deregister_worker(conn, self.id)
            log.info("worker %s stopped", self.id)

    def _claim_limits(self) -> tuple[int, list[str]]:
        """How many tasks to claim now, and whose tasks may not take them (fair share)."""
        free = self.config.concurrency - self.in_flight
        reserve = int(self.config.concurrency * self.config.fair_reserve)
        if free <= reserve:
            # Only the reserve is left: for keys that hold fewer tasks than it.
            big = [key for key, held in self._by_key.items() if held >= reserve]
            return min(free, self.config.claim_batch), big
        return min(free - reserve, self.config.claim_batch), []

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            want, exclude = self._claim_limits()
            if want <= 0:
                await self._slot_freed.wait(self.config.poll_interval)
                continue
            try:
                async with self.db.write() as conn:
                    tasks = await self.repo.claim(
                        conn,
                        self.id,
                        want,
                        stale_after=self.config.stale_after,
                        exclude_fair_keys=exclude,
                    )
            except Exception:
                log.exception("claim failed; retrying after the poll interval")
                tasks = []
                await asyncio.sleep(self.config.poll_interval)
            if tasks:
                metrics.CLAIMS.inc(len(tasks))
            for task in tasks:
                if task.fair_key is not None:
                    self._by_key[task.fair_key] += 1
                self._start(task)
            if len(tasks) < want:
                await self.wakeup.wait(self.config.poll_interval)

    def _start(self, task: Task, note: Any = None) -> None:
        runner = asyncio.create_task(self._execute(task, note), name=f"task-{task.id}")
        self._running[task.id] = runner
        metrics.IN_FLIGHT.inc()

        def _done(finished: asyncio.Task[None]) -> None:
            # Only our own entry: the same task may have been claimed again meanwhile.
            if self._running.get(task.id) is finished:
                del self._running[task.id]
            metrics.IN_FLIGHT.dec()
            if task.fair_key is not None and task.id not in self._parked:
                # Its claim is over (a parked task is still held, and resumes later).
                held = self._by_key[task.fair_key] - 1
                if held > 0:
                    self._by_key[task.fair_key] = held
                else:
                    self._by_key.pop(task.fair_key, None)
            self._slot_freed.notify()

        runner.add_done_callback(_done)

    async def _execute(self, task: Task, note: Any = None) -> None:
        spec = self.registry.get(task.handler)
        if spec is None:
            await self._report(self._bury, task, None, f"no handler named {task.handler!r}")
            return
        if task.attempts >= task.max_attempts:
            # Reclaimed from dead workers until its attempts ran out: stop the crash loop.
            await self._report(
                self._bury, task, spec, task.last_error or "worker lost while running"
            )
            return
        ctx = TaskContext(task=task, worker=self, note=note)
        started = time.perf_counter()
        outcome = "done"
        try:
            # asyncio.timeout, not wait_for: no second task per item (memory, at 10k in flight).
            async with asyncio.timeout(spec.timeout):
                await spec.fn(ctx)
        except asyncio.CancelledError:
            outcome = "released"
            if self._shutting_down:
                await asyncio.shield(self._report(self._release, task))
            raise
        except TaskParked:
            outcome = "parked"
            self._parked[task.id] = task
        except LostTask:
            outcome = "lost"
            log.warning("task %s was taken over by another worker; dropped", task.id)
        except TimeoutError as exc:
            # Ours (the handler's time limit) or one the handler let escape.
            reason = f"timed out after {spec.timeout:g} s" if spec.timeout else f"timeout: {exc}"
            outcome = await self._fail(task, spec, reason, None)
        except Exception as exc:
            decision = retry_decision(exc)
            if not decision.retry:
                outcome = "dead"
                await self._report(self._bury, task, spec, str(exc) or type(exc).__name__)
            elif decision.expected:
                outcome = await self._fail(task, spec, str(exc), decision.delay)
            else:
                log.warning("task %s (%s) failed: %s", task.id, task.handler, exc, exc_info=True)
                message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
                outcome = await self._fail(task, spec, message, decision.delay)
        else:
            if not ctx.completed:
                await self._report(self._complete, task)
        finally:
            metrics.TASK_SECONDS.labels(task.handler, outcome).observe(
                time.perf_counter() - started
            )

    async def _fail(self, task: Task, spec: HandlerSpec, error: str, delay: float | None) -> str:
        if task.attempts + 1 >= task.max_attempts:
            await self._report(self._bury, task, spec, error)
            return "dead"
        wait = delay if delay is not None else self.config.retry.delay(task.attempts + 1)
        await self._report(self._retry, task, wait, error)
        return "retry"

    async def _complete(self, task: Task) -> None:
        async with self.db.write() as conn:
            await self.repo.complete(conn, task)

    async def _retry(self, task: Task, delay: float, error: str) -> None:
        async with self.db.write() as conn:
            await self.repo.retry(conn, task, delay=delay, error=error)
        metrics.FAILURES.labels(task.handler, "retry").inc()

    async def _bury(self, task: Task, spec: HandlerSpec | None, error: str) -> None:
        async with self.db.write() as conn:
            await self.repo.bury(conn, task, error=error)
            if spec is not None and spec.on_dead is not None:
                await spec.on_dead(conn, task, error)
        metrics.FAILURES.labels(task.handler, "dead").inc()

    async def _release(self, task: Task) -> None:
        async with self.db.write() as conn:
            await self.repo.release(conn, task)

    async def _report(self, action: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Record an outcome; if the database is away, keep retrying from the heartbeat."""
        try:
            await action(*args)
        except LostTask:
            log.warning("task outcome not recorded: the task belongs to another worker now")
        except Exception:
            log.exception("could not record a task outcome; will retry")
            self._unreported.append(lambda: action(*args))

    async def _retry_unreported(self) -> None:
        pending, self._unreported = self._unreported, []
        for action in pending:
            try:
                await action()
            except LostTask:
                pass
            except Exception:
                self._unreported.append(action)

    async def _heartbeat(self) -> None:
        async with self.db.write() as conn:
            alive = await self.repo.heartbeat(conn, self.id, in_flight=self.in_flight)
            if not alive:
                # We were given up for dead (a long pause): our tasks went back to the queue
                # and may be running elsewhere already. Stop ours (their writes would be
                # fenced off anyway) and register again.
                log.warning(
                    "worker row was swept; dropping %d tasks, registering again", self.in_flight
                )
                for runner in self._running.values():
                    runner.cancel()
                self._parked.clear()
                self._by_key.clear()
                await self.repo.register_worker(
                    conn, self.id, name=self.config.name, concurrency=self.config.concurrency
                )
        await self._retry_unreported()

    async def _sweep(self) -> None:
        async with self.db.write() as conn:
            lease_ttl = self.config.sweep_interval * 2
            if await self.repo.try_lease(conn, "sweeper", self.id, ttl=lease_ttl):
                requeued = await self.repo.sweep(
                    conn, stale_after=self.config.stale_after, sweeper=self.id
                )
                if requeued:
                    log.warning("sweeper requeued %d tasks of silent workers", requeued)

    async def _drain(self) -> None:
        if self._running:
            log.info(
                "waiting up to %.0f s for %d tasks", self.config.shutdown_grace, len(self._running)
            )
            pending = list(self._running.values())
            _, still_running = await asyncio.wait(pending, timeout=self.config.shutdown_grace)
            if still_running:
                self._shutting_down = True
                for task in still_running:
                    task.cancel()
                await asyncio.gather(*still_running, return_exceptions=True)
        parked, self._parked = list(self._parked.values()), {}
        for waiting in parked:
            # Waiting on someone else (a provider): back to the queue, no attempt counted.
            await self._report(self._release, waiting)
