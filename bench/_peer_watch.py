"""Watching one side of ``bench peer`` through a run: its worker's memory and CPU, progress.

Both sides are watched the same way. Before any work the worker settles for a moment and
its RSS is read ("idle"). Then the work is enqueued and, every ``SAMPLE`` seconds, the
worker's RSS (the process and any children) is read against what the provider has seen:
while every generation has been submitted and no result has been fetched yet, all of them
are waiting in the worker, and the largest RSS of that window is "RSS with all waiting".
The run ends when the side says every generation is stored, or at a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil

from bench._peer_provider import ProviderLog
from bench._sim import DoorLog

SAMPLE = 0.2  # seconds between RSS samples
PROGRESS_EVERY = 1.0  # seconds between progress checks (a database query for Conveyor)
SETTLE = 2.0  # seconds a fresh worker is left alone before its idle RSS is read

Progress = Callable[[], Awaitable[tuple[int, int]]]  # (stored, failed) generations


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def tree_rss(process: psutil.Process) -> int:
    """RSS of ``process`` and its children (a worker may start helper processes)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


def tree_cpu(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` and its live children."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass
class SideRun:
    """What one side did with the generations, as its worker and the provider saw it."""

    side: str
    generations: int
    idle_rss: int = 0
    peak_rss: int = 0
    waiting_rss: int = 0
    # Generations waiting when ``waiting_rss`` was read: all of them, unless submitting
    # was slower than the shortest generation (then the peak number in flight).
    waiting_count: int = 0
    enqueue_started: float = math.nan  # monotonic, the provider's clock
    enqueue_seconds: float = math.nan  # how long the enqueue call itself took
    worker_cpu: float = 0.0
    bench_cpu: float = 0.0
    stored: int = 0
    failed: int = 0
    unfinished: bool = False
    seconds: float = math.nan  # enqueue → every generation stored (or the deadline)
    # Provider task id → wall time its result was stored (item committed / file written).
    stored_wall: dict[str, float] = field(default_factory=dict)
    provider: ProviderLog | None = None
    notes: list[str] = field(default_factory=list)


async def settle_and_read_idle(process: psutil.Process, run: SideRun) -> None:
    await asyncio.sleep(SETTLE)
    run.idle_rss = run.peak_rss = tree_rss(process)


async def watch(
    process: psutil.Process,
    door: DoorLog,
    run: SideRun,
    progress: Progress,
    deadline: float,
    alive: Callable[[], str | None],
) -> None:
    """Sample until ``progress`` says all are stored or ``deadline`` (monotonic) passes.

    ``alive`` returns why the worker is gone, or None while it runs.
    """
    me = psutil.Process()
    worker_cpu, bench_cpu = tree_cpu(process), me.cpu_times()
    peak_in_flight = 0
    next_progress = next_log = 0.0
    while True:
        now = time.monotonic()
        rss = tree_rss(process)
        run.peak_rss = max(run.peak_rss, rss)
        in_flight = door.in_flight
        if door.submitted >= run.generations and door.downloaded == 0:
            run.waiting_count = run.generations
            run.waiting_rss = max(run.waiting_rss, rss)
        elif run.waiting_count < run.generations and in_flight > peak_in_flight:
            peak_in_flight = run.waiting_count = in_flight
            run.waiting_rss = rss
        if now >= next_progress:
            next_progress = now + PROGRESS_EVERY
            run.stored, run.failed = await progress()
            if run.stored + run.failed >= run.generations:
                break
        if now >= next_log:
            next_log = now + 5.0
            log(
                f"{run.side} {now - run.enqueue_started:5.0f} s: submitted {door.submitted:,}, "
                f"in flight {in_flight:,}, stored {run.stored:,}/{run.generations:,}, "
                f"worker RSS {rss / 2**20:.0f} MiB"
            )
        if now > deadline:
            run.unfinished = True
            break
        gone = alive()
        if gone is not None:
            raise RuntimeError(f"{run.side}: the worker stopped\n{gone}")
        await asyncio.sleep(SAMPLE)
    run.seconds = time.monotonic() - run.enqueue_started
    run.worker_cpu = tree_cpu(process) - worker_cpu
    spent = me.cpu_times()
    run.bench_cpu = (spent.user + spent.system) - (bench_cpu.user + bench_cpu.system)
    if run.waiting_count < run.generations:
        run.notes.append(
            f"{run.side}: never had all {run.generations:,} waiting at once (a result was "
            f"fetched before the last submit); RSS per waiting generation is taken at the "
            f"peak of {run.waiting_count:,} in flight"
        )


def deadline_for(started: float, generations: int, latency_max: float) -> float:
    """When to stop waiting: the last generation's latency plus generous slack."""
    return started + latency_max + max(120.0, generations / 20)
