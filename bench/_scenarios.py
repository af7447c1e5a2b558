"""The engine benchmark's four scenarios; each stands up its own database, simulator, worker.

* ``run_creation``: a 1,000-item job through ``POST /v1/jobs`` (uvicorn on loopback, after
  one warm-up request) and through ``JobService.prepare`` + ``create``.
* ``run_throughput``: one job, instant provider, from just before the job is created until
  its last item is completed with its result stored as an asset.
* ``run_capacity``: one job whose provider tasks never finish during the run; the worker
  holds as many as it can, is watched for ``hold`` seconds at its peak (RSS, polls), then
  killed (the database is thrown away, so there is nothing to release).
* ``run_timing``: one job with the fake provider's 30–60 s × scale latency, run to
  completion: every poll interval, and the lag from the provider's done time to the poll
  that saw it, to the download, and to the item's result being committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
from sqlalchemy import func, select

from bench._sim import DoorLog, fake_provider, start_recording_simulator
from bench._stack import (
    WorkerProcess,
    bench_settings,
    fresh_database,
    load_sized_spec,
    serving_api,
)
from bench._stats import percentile
from conveyor.assets.models import assets
from conveyor.clients.service import LOCAL_CLIENT
from conveyor.config import Settings
from conveyor.core.db import Database
from conveyor.jobs.models import items, jobs, step_runs
from conveyor.jobs.schemas import JobCreate
from conveyor.runtime import Runtime, open_runtime
from conveyor.sim import RunningSimulator

MODEL = "genapi/z-image"
PROVIDER = "genapi"
# Poll intervals before the spec's backoff (1 s, then ×1.5: 1.5, 2.25) reaches 3 s.
STEADY_AFTER = 2
CREATION_ITEMS = 1_000
# "Never finishes" for the capacity run: far beyond any run, within the spec's max_wait.
CAPACITY_LATENCY = 190.0


@dataclass
class Creation:
    backend: str
    api: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)


@dataclass
class Throughput:
    backend: str
    items: int
    seconds: float
    steady_rate: float
    completed: int
    failed: int
    stored_assets: int
    worker_cpu: float
    bench_cpu: float

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


@dataclass
class Capacity:
    items: int
    hold: float
    idle_rss: int = 0
    peak_in_flight: int = 0
    rss_at_peak: int = 0
    max_rss: int = 0
    ramp_seconds: float = math.nan
    held_in_flight: int = 0
    worker_cpu_share: float = 0.0
    simulator_cpu_share: float = 0.0
    steady_intervals: list[float] = field(default_factory=list)


@dataclass
class Timing:
    items: int
    scale: float
    total_seconds: float = 0.0
    completed: int = 0
    failed: int = 0
    submissions: int = 0
    unfinished: bool = False
    peak_in_flight: int = 0
    worker_cpu: float = 0.0
    steady_intervals: list[float] = field(default_factory=list)
    first_intervals: list[float] = field(default_factory=list)
    done_to_poll: list[float] = field(default_factory=list)
    done_to_download: list[float] = field(default_factory=list)
    done_to_stored: list[float] = field(default_factory=list)


# -- shared steps --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def simulator(
    latency_min: float, latency_max: float, scale: float = 1.0
) -> AsyncIterator[tuple[RunningSimulator, DoorLog]]:
    config = fake_provider(latency_min=latency_min, latency_max=latency_max, scale=scale)
    sim, door = await start_recording_simulator(config)
    try:
        yield sim, door
    finally:
        await sim.close()


@contextlib.asynccontextmanager
async def running(
    settings: Settings, log_path: Path
) -> AsyncIterator[tuple[Runtime, WorkerProcess]]:
    """This process's runtime (to create jobs and read results) and a ``conveyor worker``.

    The load-sized gen-api spec is stored before the worker starts, so the worker loads it.
    The worker is killed at the end: the database is thrown away, nothing needs releasing.
    """
    runtime = await open_runtime(settings)
    try:
        await runtime.catalog.add_provider(
            load_sized_spec(PROVIDER, settings.http_pool_size), origin="bench", replace=True
        )
        worker = await WorkerProcess(settings, log_path).start()
        try:
            yield runtime, worker
        finally:
            await worker.kill()
    finally:
        await runtime.close()


async def create_job(runtime: Runtime, count: int, tag: str) -> str:
    body = JobCreate(
        model=MODEL, items=[{"prompt": f"{tag} product photo {i}"} for i in range(count)]
    )
    submission = runtime.jobs.prepare(body)
    async with runtime.db.write() as conn:
        created = await runtime.jobs.create(conn, LOCAL_CLIENT, submission)
    return created.job.id


async def job_counts(db: Database, job_id: str) -> tuple[int, int, int]:
    """(completed, failed + cancelled, total)."""
    query = select(jobs.c.completed, jobs.c.failed, jobs.c.cancelled, jobs.c.total)
    async with db.read() as conn:
        row = (await conn.execute(query.where(jobs.c.id == job_id))).one()
    return row.completed, row.failed + row.cancelled, row.total


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _check_alive(worker: WorkerProcess, what: str) -> None:
    if worker.process is not None and worker.process.poll() is not None:
        raise RuntimeError(f"{what}: the worker process died\n{worker.tail()}")


# -- creation ------------------------------------------------------------------------------


async def run_creation(kind: str, repeats: int, workdir: Path) -> Creation:
    result = Creation(kind)
    async with fresh_database(kind, workdir) as backend, simulator(0, 0) as (sim, _):
        settings = bench_settings(backend, workdir / f"data-create-{kind}", sim.base_url)
        body = {
            "model": MODEL,
            "items": [{"prompt": f"creation product photo {i}"} for i in range(CREATION_ITEMS)],
        }
        async with serving_api(settings) as (base_url, app), aiohttp.ClientSession() as http:
            warm = {"model": MODEL, "items": [{"prompt": "warm-up"}]}
            for payload, times in [(warm, None), *[(body, result.api)] * repeats]:
                started = time.perf_counter()
                async with http.post(f"{base_url}/v1/jobs", json=payload) as answer:
                    text = await answer.text()
                    if answer.status >= 300:
                        raise RuntimeError(f"POST /v1/jobs: {answer.status} {text[:300]}")
                if times is not None:
                    times.append(time.perf_counter() - started)
            runtime: Runtime = app.state.runtime
            for index in range(repeats):
                started = time.perf_counter()
                await create_job(runtime, CREATION_ITEMS, f"service {index}")
                result.service.append(time.perf_counter() - started)
    return result


# -- throughput ----------------------------------------------------------------------------


async def run_throughput(kind: str, count: int, workdir: Path) -> Throughput:
    async with fresh_database(kind, workdir) as backend, simulator(0, 0) as (sim, _):
        settings = bench_settings(backend, workdir / f"data-{kind}", sim.base_url)
        log_path = workdir / f"worker-throughput-{kind}.log"
        async with running(settings, log_path) as (runtime, worker):
            return await _measure_throughput(runtime, worker, kind, count)


async def _measure_throughput(
    runtime: Runtime, worker: WorkerProcess, kind: str, count: int
) -> Throughput:
    me = psutil.Process()
    worker_cpu, bench_cpu = worker.cpu_seconds(), _cpu(me)
    started = time.perf_counter()
    job_id = await create_job(runtime, count, "throughput")
    deadline = started + max(180.0, count / 5)
    next_log = started + 10.0
    while True:
        completed, failed, total = await job_counts(runtime.db, job_id)
        if completed + failed >= total:
            break
        now = time.perf_counter()
        if now > deadline:
            raise RuntimeError(f"throughput ({kind}): {completed + failed}/{total} items in time")
        if now > next_log:
            next_log = now + 10.0
            log(f"throughput {kind} {now - started:5.0f} s: {completed + failed:,}/{total:,}")
        _check_alive(worker, f"throughput ({kind})")
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    worker_cpu, bench_cpu = worker.cpu_seconds() - worker_cpu, _cpu(me) - bench_cpu
    async with runtime.db.read() as conn:
        rows = await conn.execute(
            select(items.c.finished_at).where(
                items.c.job_id == job_id, items.c.finished_at.is_not(None)
            )
        )
        finished = [row.finished_at.timestamp() for row in rows]
        stored = await conn.scalar(
            select(func.count()).select_from(assets).where(assets.c.job_id == job_id)
        )
    low, high = percentile(finished, 10), percentile(finished, 90)
    steady = 0.8 * len(finished) / (high - low) if high > low else math.nan
    return Throughput(
        kind, count, elapsed, steady, completed, failed, int(stored or 0), worker_cpu, bench_cpu
    )


# -- capacity ------------------------------------------------------------------------------


async def run_capacity(count: int, hold: float, ramp_limit: float, workdir: Path) -> Capacity:
    result = Capacity(count, hold)
    async with (
        fresh_database("sqlite", workdir) as backend,
        simulator(CAPACITY_LATENCY, CAPACITY_LATENCY) as (sim, door),
    ):
        settings = bench_settings(
            backend, workdir / "data-capacity", sim.base_url, worker_concurrency=count + 100
        )
        async with running(settings, workdir / "worker-capacity.log") as (runtime, worker):
            await _measure_capacity(runtime, worker, door, result, ramp_limit)
    return result


async def _measure_capacity(
    runtime: Runtime, worker: WorkerProcess, door: DoorLog, result: Capacity, ramp_limit: float
) -> None:
    await asyncio.sleep(2.0)  # let the fresh worker settle before reading its idle size
    result.idle_rss = worker.rss()
    started = time.perf_counter()
    await create_job(runtime, result.items, "capacity")
    hold_from: float | None = None
    next_log = 0.0
    cpu_at_hold = own_cpu_at_hold = 0.0
    me = psutil.Process()
    while True:
        now = time.perf_counter()
        rss = worker.rss()
        result.max_rss = max(result.max_rss, rss)
        if door.in_flight > result.peak_in_flight:
            result.peak_in_flight, result.rss_at_peak = door.in_flight, rss
            result.ramp_seconds = now - started
        if now >= next_log:
            next_log = now + 5.0
            log(
                f"capacity {now - started:5.0f} s: {door.in_flight:,} in flight, "
                f"{_poll_count(door):,} polls, worker RSS {rss / 1e6:.0f} MB"
            )
        if hold_from is None and (door.submitted >= result.items or now - started > ramp_limit):
            hold_from, cpu_at_hold, own_cpu_at_hold = now, worker.cpu_seconds(), _cpu(me)
        if hold_from is not None and now - hold_from >= result.hold:
            break
        _check_alive(worker, "capacity")
        await asyncio.sleep(0.25)
    held = time.perf_counter() - (hold_from or started)
    result.worker_cpu_share = (worker.cpu_seconds() - cpu_at_hold) / held
    result.simulator_cpu_share = (_cpu(me) - own_cpu_at_hold) / held
    result.held_in_flight = door.in_flight
    window_start = time.monotonic() - held
    for times in door.polls.values():
        steady = list(itertools.pairwise(times))[STEADY_AFTER:]
        result.steady_intervals += [b - a for a, b in steady if a >= window_start]


def _poll_count(door: DoorLog) -> int:
    return sum(len(times) for times in door.polls.values())


# -- timing --------------------------------------------------------------------------------


async def run_timing(count: int, scale: float, workdir: Path) -> Timing:
    result = Timing(count, scale)
    async with (
        fresh_database("sqlite", workdir) as backend,
        simulator(30.0, 60.0, scale) as (sim, door),
    ):
        settings = bench_settings(
            backend, workdir / "data-timing", sim.base_url, worker_concurrency=max(2000, count)
        )
        async with running(settings, workdir / "worker-timing.log") as (runtime, worker):
            await _measure_timing(runtime, worker, sim, door, result)
    return result


async def _measure_timing(
    runtime: Runtime,
    worker: WorkerProcess,
    sim: RunningSimulator,
    door: DoorLog,
    result: Timing,
) -> None:
    cpu = worker.cpu_seconds()
    started = time.perf_counter()
    job_id = await create_job(runtime, result.items, "timing")
    # The last provider finish plus slack for a slow drain; past it, report what there is.
    deadline = started + 60.0 * result.scale + max(120.0, result.items / 20)
    next_check = 0.0
    completed = failed = 0
    while True:
        now = time.perf_counter()
        result.peak_in_flight = max(result.peak_in_flight, door.in_flight)
        if now >= next_check:
            next_check = now + 5.0
            completed, failed, total = await job_counts(runtime.db, job_id)
            log(
                f"timing {now - started:5.0f} s: submitted {door.submitted:,}, in flight "
                f"{door.in_flight:,}, finished {completed + failed:,}/{total:,}"
            )
            if completed + failed >= total:
                break
        if now > deadline:
            result.unfinished = True
            break
        _check_alive(worker, "timing")
        await asyncio.sleep(0.25)
    result.total_seconds = time.perf_counter() - started
    result.worker_cpu = worker.cpu_seconds() - cpu
    result.completed, result.failed = completed, failed
    await _collect_timings(runtime.db, sim, door, job_id, result)


async def _collect_timings(
    db: Database, sim: RunningSimulator, door: DoorLog, job_id: str, result: Timing
) -> None:
    for times in door.polls.values():
        intervals = [b - a for a, b in itertools.pairwise(times)]
        result.first_intervals += intervals[:STEADY_AFTER]
        result.steady_intervals += intervals[STEADY_AFTER:]
    # The simulator's clock is time.monotonic of this process; the database's is wall time.
    wall_offset = time.time() - time.monotonic()
    snapshot = sim.counters()
    result.submissions = int(snapshot["submissions_total"])
    done_wall: dict[str, float] = {}
    for task_id, task in snapshot["tasks"].items():
        if task["done_at"] is None:
            continue
        done_wall[task_id] = task["done_at"] + wall_offset
        if task["done_to_poll_lag"] is not None:
            result.done_to_poll.append(task["done_to_poll_lag"])
        if task["done_to_download_lag"] is not None:
            result.done_to_download.append(task["done_to_download_lag"])
    query = (
        select(step_runs.c.external_task_id, items.c.finished_at)
        .join(items, items.c.id == step_runs.c.item_id)
        .where(items.c.job_id == job_id, step_runs.c.status == "succeeded")
    )
    async with db.read() as conn:
        for task_id, finished_at in await conn.execute(query):
            if task_id in done_wall and finished_at is not None:
                result.done_to_stored.append(finished_at.timestamp() - done_wall[task_id])
