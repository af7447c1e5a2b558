"""The worker loop on real databases: outcomes, concurrency, graceful stop."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from conveyor.core.notify import Signal
from conveyor.queue import (
    NewTask,
    QueueRepository,
    RetryPolicy,
    Task,
    TaskContext,
    TaskRegistry,
    Worker,
    WorkerConfig,
)


class TryAgain(Exception):
    """Follows the queue's protocol: retryable, after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Hopeless(Exception):
    """Follows the queue's protocol: never worth another attempt."""

    retryable = False


FAST = WorkerConfig(
    concurrency=10,
    claim_batch=5,
    poll_interval=0.05,
    heartbeat_interval=0.2,
    stale_after=5.0,
    sweep_interval=0.5,
    shutdown_grace=0.5,
    retry=RetryPolicy(base_delay=0.01, max_delay=0.02),
)


@asynccontextmanager
async def running_worker(
    db: Database, registry: TaskRegistry, config: WorkerConfig = FAST
) -> AsyncIterator[tuple[Worker, QueueRepository]]:
    wakeup = Signal()
    repo = QueueRepository(db.dialect, SystemClock(), default_max_attempts=3, wakeup=wakeup.notify)
    worker = Worker(db, repo, registry, config, wakeup=wakeup)
    runner = asyncio.create_task(worker.run())
    await worker.started.wait()
    try:
        yield worker, repo
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 10)


async def _enqueue(db: Database, repo: QueueRepository, *tasks: NewTask) -> None:
    async with db.write() as conn:
        await repo.enqueue(conn, list(tasks))


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _settled(worker: Worker) -> None:
    """Until every claimed task's outcome is written: a task stays in flight until its
    handler returned *and* the worker recorded what happened, so none is half-reported."""
    await _until(lambda: worker.in_flight == 0)


async def test_handler_runs_once_and_task_is_removed(db: Database) -> None:
    seen: list[int] = []

    async def handler(ctx: TaskContext) -> None:
        seen.append(ctx.payload["n"])

    registry = TaskRegistry()
    registry.register("record", handler)
    async with running_worker(db, registry) as (worker, repo):
        await _enqueue(db, repo, *(NewTask("record", {"n": n}) for n in range(20)))
        await _until(lambda: len(seen) == 20)
        await _settled(worker)
        async with db.read() as conn:
            counts = await repo.counts(conn)
    assert sorted(seen) == list(range(20))
    assert counts == {"queued": 0, "running": 0, "dead": 0}


async def test_failures_retry_then_die_and_the_domain_hears_of_it(db: Database) -> None:
    calls: dict[str, int] = {"flaky": 0, "broken": 0, "hopeless": 0}
    buried: list[tuple[int, str]] = []

    async def flaky(ctx: TaskContext) -> None:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise TryAgain("not yet", retry_after=0.01)

    async def broken(ctx: TaskContext) -> None:
        calls["broken"] += 1
        raise ValueError("bug")

    async def hopeless(ctx: TaskContext) -> None:
        calls["hopeless"] += 1
        raise Hopeless("input can never work")

    async def on_dead(conn: AsyncConnection, task: Task, error: str) -> None:
        buried.append((task.id, error))

    registry = TaskRegistry()
    registry.register("flaky", flaky, on_dead=on_dead)
    registry.register("broken", broken, on_dead=on_dead)
    registry.register("hopeless", hopeless, on_dead=on_dead)
    async with running_worker(db, registry) as (worker, repo):
        await _enqueue(
            db, repo, NewTask("flaky", {}), NewTask("broken", {}), NewTask("hopeless", {})
        )
        await _until(lambda: len(buried) == 2 and calls["flaky"] == 3)
        await _settled(worker)
        async with db.read() as conn:
            dead = await repo.list_tasks(conn, status="dead")
    assert calls == {"flaky": 3, "broken": 3, "hopeless": 1}
    assert {t.handler for t in dead} == {"broken", "hopeless"}
    errors = {t.handler: t.last_error or "" for t in dead}
    assert "ValueError: bug" in errors["broken"]
    assert errors["hopeless"] == "input can never work"
    assert sorted(e for _, e in buried)[1] == "input can never work"


async def test_concurrency_limit_is_respected(db: Database) -> None:
    active = 0
    peak = 0
    done = 0

    async def slow(ctx: TaskContext) -> None:
        nonlocal active, peak, done
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        done += 1

    registry = TaskRegistry()
    registry.register("slow", slow)
    config = WorkerConfig(**{**FAST.__dict__, "concurrency": 4})
    async with running_worker(db, registry, config) as (_, repo):
        await _enqueue(db, repo, *(NewTask("slow", {}) for _ in range(16)))
        await _until(lambda: done == 16)
    assert peak == 4


async def test_graceful_stop_releases_unfinished_work_without_counting_an_attempt(
    db: Database,
) -> None:
    started = asyncio.Event()

    async def forever(ctx: TaskContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    registry = TaskRegistry()
    registry.register("forever", forever)
    async with running_worker(db, registry) as (worker, repo):
        await _enqueue(db, repo, NewTask("forever", {}))
        await started.wait()
        assert worker.in_flight == 1
    async with db.read() as conn:
        [task] = await repo.list_tasks(conn)
        workers = await repo.live_workers(conn, stale_after=60)
    assert task.status == "queued"
    assert task.attempts == 0
    assert workers == 0


async def test_handler_completing_in_its_own_transaction(db: Database) -> None:
    done = asyncio.Event()

    async def atomic(ctx: TaskContext) -> None:
        async with ctx.db.write() as conn:
            await ctx.complete(conn)
        done.set()

    registry = TaskRegistry()
    registry.register("atomic", atomic)
    async with running_worker(db, registry) as (worker, repo):
        await _enqueue(db, repo, NewTask("atomic", {}))
        await asyncio.wait_for(done.wait(), 10)
        await _settled(worker)
        async with db.read() as conn:
            assert sum((await repo.counts(conn)).values()) == 0


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = RetryPolicy(base_delay=2, max_delay=60, random=lambda: 0.0)
    high = RetryPolicy(base_delay=2, max_delay=60, random=lambda: 0.999999)
    assert [low.delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert [round(high.delay(n)) for n in (1, 2, 3)] == [2, 4, 8]
    assert high.delay(30) == pytest.approx(60, rel=1e-3)
    assert low.delay(30) == 30


async def test_a_timeout_escaping_a_handler_without_a_limit_is_retried(db: Database) -> None:
    calls = 0

    async def times_out_once(ctx: TaskContext) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TimeoutError("the provider took too long")

    registry = TaskRegistry()
    registry.register("slowpoke", times_out_once)
    async with running_worker(db, registry) as (worker, repo):
        await _enqueue(db, repo, NewTask("slowpoke", {}))
        await _until(lambda: calls == 2)
        await _settled(worker)
        async with db.read() as conn:
            assert sum((await repo.counts(conn)).values()) == 0


async def test_one_key_never_takes_the_reserved_slots(db: Database) -> None:
    started: list[str] = []
    release = asyncio.Event()

    async def hold(ctx: TaskContext) -> None:
        started.append(str(ctx.payload["who"]))
        await release.wait()

    registry = TaskRegistry()
    registry.register("hold", hold)
    config = dataclasses.replace(FAST, fair_reserve=0.2)  # 2 of 10 slots
    async with running_worker(db, registry, config) as (worker, repo):
        await _enqueue(
            db, repo, *(NewTask("hold", {"who": "a"}, fair_key="client-a") for _ in range(30))
        )
        await _until(lambda: started.count("a") == 8)
        # A holds all but the reserve: it waits, though 22 of its tasks are due.
        await _enqueue(db, repo, NewTask("hold", {"who": "b"}, fair_key="client-b"))
        await _until(lambda: "b" in started)
        assert started.count("a") == 8
        assert worker.in_flight == 9
        release.set()
        await _until(lambda: started.count("a") == 30)
