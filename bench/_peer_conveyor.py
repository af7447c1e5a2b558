"""Conveyor's side of ``bench peer``: one ``conveyor worker`` against the same provider.

The stack is what a user runs: a fresh database (SQLite by default), the API served by
uvicorn in this process (``serving_api``), one ``conveyor worker`` process, and one job of
N items of the ``model`` recipe on ``genapi/z-image``. The shipped gen-api spec polls 1 s
first and backs off toward 3 s; for the comparison a copy with the peer's fixed interval
(``initial_interval = interval = poll``, the shipped ±10 % jitter kept) and the request
limits raised to the HTTP pool (``load_sized_spec``) is stored as an operator-added
provider before the worker starts. A generation is stored when its item is committed with
its result (``items.finished_at``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import yaml
from sqlalchemy import select

from bench._peer_provider import fake_generation_provider, prompt, provider_log
from bench._peer_watch import SideRun, deadline_for, log, settle_and_read_idle, watch
from bench._scenarios import MODEL, PROVIDER, job_counts
from bench._sim import DoorLog
from bench._stack import (
    WorkerProcess,
    bench_settings,
    fresh_database,
    load_sized_spec,
    serving_api,
)
from conveyor.core.db import Database
from conveyor.jobs.models import items, step_runs
from conveyor.runtime import Runtime
from conveyor.sim import RunningSimulator


def peer_spec(poll: float, max_in_flight: int, latency_max: float) -> str:
    """The shipped gen-api spec polling every ``poll`` s, sized limits, room for the latency."""
    data = yaml.safe_load(load_sized_spec(PROVIDER, max_in_flight))
    rules = data["common"]["poll"]
    rules["initial_interval"] = rules["interval"] = poll
    rules["max_interval"] = max(float(rules["max_interval"]), poll)
    rules["max_wait"] = max(float(rules["max_wait"]), 2 * latency_max + 60)
    return yaml.safe_dump(data, sort_keys=False)


@dataclass(frozen=True, slots=True)
class ConveyorStack:
    base_url: str
    runtime: Runtime
    worker: WorkerProcess
    sim: RunningSimulator
    door: DoorLog

    @property
    def process(self) -> psutil.Process:
        assert self.worker.ps is not None
        return self.worker.ps

    def gone(self) -> str | None:
        process = self.worker.process
        return self.worker.tail() if process is not None and process.poll() is not None else None


@contextlib.asynccontextmanager
async def conveyor_stack(
    generations: int,
    poll: float,
    latency: tuple[float, float],
    backend_kind: str,
    workdir: Path,
    *,
    command: Sequence[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[ConveyorStack]:
    """Database, provider, API and a started worker, torn down in reverse on exit."""
    async with (
        fresh_database(backend_kind, workdir) as backend,
        fake_generation_provider(*latency) as (sim, door),
    ):
        settings = bench_settings(
            backend,
            workdir / f"data-conveyor-{backend_kind}",
            sim.base_url,
            worker_concurrency=generations + 100,
        )
        async with serving_api(settings) as (base_url, app):
            runtime: Runtime = app.state.runtime
            spec = peer_spec(poll, settings.http_pool_size, latency[1])
            await runtime.catalog.add_provider(spec, origin="bench", replace=True)
            worker = WorkerProcess(
                settings, workdir / f"conveyor-worker-{backend_kind}.log", extra_env, command
            )
            try:
                # Generous: a worker under tracemalloc imports slowly on a busy machine.
                await worker.start(timeout=180)
                yield ConveyorStack(base_url, runtime, worker, sim, door)
            finally:
                await worker.kill()  # also when it never became ready


async def post_job(base_url: str, generations: int) -> str:
    """``POST /v1/jobs``: one job of ``generations`` items; its id."""
    body = {"model": MODEL, "items": [{"prompt": prompt(i)} for i in range(generations)]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/v1/jobs", json=body) as answer,
    ):
        text = await answer.text()
        if answer.status >= 300:
            raise RuntimeError(f"POST /v1/jobs: {answer.status} {text[:300]}")
        job_id = (await answer.json())["id"]
    return str(job_id)


async def stored_times(db: Database, job_id: str) -> dict[str, float]:
    """Provider task id → wall time its item was committed with its result."""
    query = (
        select(step_runs.c.external_task_id, items.c.finished_at)
        .join(items, items.c.id == step_runs.c.item_id)
        .where(
            items.c.job_id == job_id,
            items.c.status == "completed",
            step_runs.c.external_task_id.is_not(None),
        )
    )
    async with db.read() as conn:
        rows = await conn.execute(query)
        return {
            str(task_id): finished_at.timestamp()
            for task_id, finished_at in rows
            if finished_at is not None
        }


async def run_conveyor(
    generations: int,
    poll: float,
    latency: tuple[float, float],
    backend_kind: str,
    workdir: Path,
) -> SideRun:
    run = SideRun(f"Conveyor ({backend_kind})", generations)
    async with conveyor_stack(generations, poll, latency, backend_kind, workdir) as stack:
        await settle_and_read_idle(stack.process, run)
        log(f"Conveyor: worker ready, idle RSS {run.idle_rss / 2**20:.0f} MiB; posting the job")
        run.enqueue_started = time.monotonic()
        job_id = await post_job(stack.base_url, generations)
        run.enqueue_seconds = time.monotonic() - run.enqueue_started

        async def progress() -> tuple[int, int]:
            completed, failed, _ = await job_counts(stack.runtime.db, job_id)
            return completed, failed

        deadline = deadline_for(run.enqueue_started, generations, latency[1])
        await watch(stack.process, stack.door, run, progress, deadline, stack.gone)
        run.provider = provider_log(stack.sim, stack.door)
        run.stored_wall = await stored_times(stack.runtime.db, job_id)
    return run
