"""The peer's side of ``bench peer``: a real ``celery worker`` (gevent) against the provider.

The worker is ``python -m celery -A bench._peer_celery worker -P gevent -c 1000``, one
process (gevent runs its pool of greenlets in the main process), on the run's own Redis
queue and key prefix; it says it is ready by writing a file (``worker_ready`` signal).
Mingle, gossip and worker heartbeats are off: with one worker they only add broker chatter.
The benchmark enqueues one task per generation from a thread (the provider runs in this
process's event loop and must keep answering meanwhile), then watches the results directory:
a generation is stored when its file is written. At the end the worker is killed and every
Redis key of the run is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bench._peer_provider import fake_generation_provider, prompt, provider_log
from bench._peer_watch import SideRun, deadline_for, log, settle_and_read_idle, watch

if TYPE_CHECKING:  # imported when the peer runs: Celery is an optional extra
    from bench._peer_celery import PeerConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


def celery_unavailable(redis_url: str) -> str | None:
    """None if the peer can run here, else why not (one line)."""
    try:
        import celery  # noqa: F401
        import gevent  # noqa: F401
        import redis
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[bench]', or `make bench`)"
    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return f"Redis at {redis_url} does not answer ({type(exc).__name__}: {exc})"
    return None


class CeleryWorker:
    """One ``celery worker`` subprocess of the peer; killed on exit."""

    def __init__(self, environment: dict[str, str], queue: str, pool: int, log_path: Path):
        self.environment = environment
        self.queue = queue
        self.pool = pool
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench._peer_celery",
            "worker",
            "-P",
            "gevent",
            "-c",
            str(self.pool),
            "-Q",
            self.queue,
            "-n",
            f"{self.queue}@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ]

    async def start(self, ready_file: Path, timeout: float = 60.0) -> psutil.Process:
        env = {**os.environ, **self.environment, "PYTHONPATH": str(REPO_ROOT)}
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                self.command(), cwd=REPO_ROOT, env=env, stdout=log_file, stderr=log_file
            )
        deadline = time.monotonic() + timeout
        while not ready_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{self.tail()}")
            await asyncio.sleep(0.1)
        return psutil.Process(self.process.pid)

    def gone(self) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            return self.tail()
        return None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


@contextlib.asynccontextmanager
async def celery_worker(
    environment: dict[str, str], queue: str, pool: int, workdir: Path, ready_file: Path
) -> AsyncIterator[tuple[CeleryWorker, psutil.Process]]:
    worker = CeleryWorker(environment, queue, pool, workdir / "celery-worker.log")
    try:
        process = await worker.start(ready_file)
        yield worker, process
    finally:
        await worker.kill()


def _enqueue(config: PeerConfig, generations: int) -> list[str]:
    """``generate.delay`` once per generation, as the common design does; the task ids."""
    from bench._peer_celery import TASK_NAME, make_app

    client = make_app(config)
    ids = []
    for generation in range(generations):
        result = client.send_task(
            TASK_NAME, kwargs={"generation": generation, "prompt": prompt(generation)}
        )
        ids.append(result.id)
    client.close()
    return ids


def _forget(config: PeerConfig, task_ids: list[str]) -> None:
    """Delete every Redis key of the run: the prefixed broker keys and the task results."""
    import redis

    client = redis.Redis.from_url(config.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{config.key_prefix}*", count=1000))
        keys += [f"celery-task-meta-{task_id}" for task_id in task_ids]
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


async def run_celery(
    generations: int,
    poll: float,
    latency: tuple[float, float],
    pool: int,
    redis_url: str,
    workdir: Path,
) -> SideRun:
    from bench._peer_celery import PeerConfig

    run = SideRun("Celery", generations)
    results = workdir / "celery-results"
    results.mkdir(parents=True, exist_ok=True)
    ready_file = workdir / "celery-ready"
    task_ids: list[str] = []
    async with fake_generation_provider(*latency) as (sim, door):
        config = PeerConfig(
            redis_url=redis_url,
            provider_url=sim.base_url,
            results_dir=str(results),
            poll=poll,
            pool=pool,
            ready_file=str(ready_file),
        )
        try:
            async with celery_worker(
                config.environment(), config.queue, pool, workdir, ready_file
            ) as (worker, process):
                await settle_and_read_idle(process, run)
                log(f"Celery: worker ready, idle RSS {run.idle_rss / 2**20:.0f} MiB; enqueueing")
                run.enqueue_started = time.monotonic()
                enqueue = asyncio.create_task(asyncio.to_thread(_enqueue, config, generations))

                async def progress() -> tuple[int, int]:
                    return len(os.listdir(results)), 0

                watching = asyncio.create_task(
                    watch(
                        process,
                        door,
                        run,
                        progress,
                        deadline_for(run.enqueue_started, generations, latency[1]),
                        worker.gone,
                    )
                )
                try:
                    task_ids = await enqueue
                    run.enqueue_seconds = time.monotonic() - run.enqueue_started
                    await watching
                finally:
                    watching.cancel()
        finally:
            await asyncio.to_thread(_forget, config, task_ids)
        run.provider = provider_log(sim, door)
    for entry in os.scandir(results):
        run.stored_wall[Path(entry.name).stem] = entry.stat().st_mtime
    return run
