"""Where Conveyor's worker spends CPU in the submit burst, and what holds memory per waiter.

``profile_conveyor`` runs Conveyor's half of the comparison twice more, each time stopping
once every generation has been submitted:

* **CPU**: py-spy samples the worker (every thread, 100 Hz, only samples on CPU) from job
  creation to the last submission at the provider. Sampling sees through the greenlets
  SQLAlchemy's asyncio layer switches between, which confuse cProfile's timings. py-spy
  is a developer tool, not a dependency: without it on ``PATH`` (``pip install py-spy``)
  this part is skipped with that reason.
* **Memory**: the worker runs under tracemalloc (``bench._peer_profiled_worker``); one
  snapshot idle, one with every generation waiting. The difference by allocation site
  (the allocating line, and the nearest Conveyor frame that led to it), divided by the
  generations waiting, is what one waiting generation holds in Python objects.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench._peer_conveyor import ConveyorStack, conveyor_stack, post_job
from bench._peer_profiled_worker import SNAPSHOT_VARIABLE
from bench._peer_watch import SETTLE, log, tree_rss

REPO_ROOT = Path(__file__).resolve().parent.parent
# The profiled runs' provider latency: longer than any submit burst, so every generation is
# still waiting when the burst ends (nothing completes inside the window profiled).
PROFILE_LATENCY = 600.0
MAIN, OTHERS = "main thread (event loop)", "other threads (aiosqlite connections, resolver)"
# One py-spy raw line: "thread (tid): name;func (file:line);...;func (file:line) count".
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True, slots=True)
class Share:
    what: str
    share: float  # of the samples in the window


@dataclass(frozen=True, slots=True)
class Holder:
    site: str
    via: str  # the nearest Conveyor frame above the allocation, if any
    bytes_per_waiter: float
    total: int


@dataclass
class Profile:
    generations: int
    backend: str
    cpu_skipped: str = ""
    burst_seconds: float = 0.0
    submitted: int = 0
    samples: int = 0
    worker_cpu: float = 0.0
    thread_cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds in the burst
    packages: list[Share] = field(default_factory=list)
    leaves: list[Share] = field(default_factory=list)
    inclusive: list[Share] = field(default_factory=list)
    waiting: int = 0
    rss_idle: int = 0
    rss_waiting: int = 0
    traced_growth: int = 0
    holders: list[Holder] = field(default_factory=list)
    by_file: list[tuple[str, float]] = field(default_factory=list)


async def profile_conveyor(generations: int, poll: float, backend: str, workdir: Path) -> Profile:
    result = Profile(generations, backend)
    latency = (PROFILE_LATENCY, PROFILE_LATENCY)
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if py_spy is None:
        result.cpu_skipped = "py-spy is not installed (`pip install py-spy` to profile the CPU)"
    else:
        await _profile_cpu(result, py_spy, poll, latency, backend, workdir / "cpu")
    await _profile_memory(result, poll, latency, backend, workdir / "memory")
    return result


async def _submit_all(stack: ConveyorStack, generations: int, limit: float) -> float:
    """Post the job and wait (at most ``limit`` s) for every submission; seconds it took."""
    started = time.monotonic()
    await post_job(stack.base_url, generations)
    deadline = started + limit
    while stack.door.submitted < generations and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _profile_cpu(
    result: Profile,
    py_spy: str,
    poll: float,
    latency: tuple[float, float],
    backend: str,
    workdir: Path,
) -> None:
    workdir.mkdir(parents=True)
    raw = workdir / "cpu.txt"
    async with conveyor_stack(result.generations, poll, latency, backend, workdir) as stack:
        process = stack.process
        await asyncio.sleep(SETTLE)
        log("profile (cpu): py-spy from job creation to the last submission")
        command = [py_spy, "record", "--pid", str(process.pid), "--format", "raw"]
        command += ["--output", str(raw), "--threads", "--rate", "100"]
        with (workdir / "py-spy.log").open("wb") as spy_log:
            spy = subprocess.Popen(command, stdout=spy_log, stderr=spy_log)
        try:
            await asyncio.sleep(1.0)  # py-spy attaches
            before = _thread_cpu(process)
            result.burst_seconds = await _submit_all(stack, result.generations, PROFILE_LATENCY / 2)
            after = _thread_cpu(process)
            result.submitted = stack.door.submitted
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            await asyncio.to_thread(spy.wait, 30)
        result.thread_cpu = {name: after[name] - before[name] for name in after}
        result.worker_cpu = sum(result.thread_cpu.values())
    _read_samples(result, raw)


def _thread_cpu(process: psutil.Process) -> dict[str, float]:
    """CPU seconds so far: the main thread (the event loop) and all the others together."""
    spent = {MAIN: 0.0, OTHERS: 0.0}
    for thread in process.threads():
        spent[MAIN if thread.id == process.pid else OTHERS] += thread.user_time + thread.system_time
    return spent


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _package(filename: str) -> str:
    short = _short(filename)
    parts = short.split("/")
    if parts[0] == "conveyor" and len(parts) > 2:
        return "/".join(parts[:2])  # conveyor/jobs, conveyor/queue, ...
    return parts[0] if len(parts) > 1 else f"stdlib {parts[0]}"


def _ours(filename: str) -> bool:
    """Conveyor's code, less the command line every sample starts in."""
    ours = filename.startswith("conveyor/") or "/conveyor/" in filename
    return ours and "conveyor/cli/" not in filename


def _read_samples(result: Profile, path: Path) -> None:
    """Shares of the main thread's samples (the event loop, where Conveyor's code runs)."""
    packages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        thread, *frames = stack.split(";")
        parsed = [m for m in (_FRAME.match(f) for f in frames) if m is not None]
        if "MainThread" not in thread or not parsed:
            continue
        count = int(count_text)
        total += count
        leaf = parsed[-1]
        packages[_package(leaf["file"])] += count
        leaves[f"{leaf['func']} ({_short(leaf['file'])})"] += count
        for name in {f"{m['func']} ({_short(m['file'])})" for m in parsed if _ours(m["file"])}:
            inclusive[name] += count
    result.samples = total
    per = max(total, 1)

    def shares(counter: Counter[str], top: int) -> list[Share]:
        return [Share(what, n / per) for what, n in counter.most_common(top)]

    result.packages = shares(packages, 12)
    result.leaves = shares(leaves, 15)
    result.inclusive = shares(inclusive, 15)


async def _profile_memory(
    result: Profile, poll: float, latency: tuple[float, float], backend: str, workdir: Path
) -> None:
    workdir.mkdir(parents=True)
    prefix = workdir / "snapshot"
    profiled = {
        "command": [sys.executable, "-m", "bench._peer_profiled_worker"],
        "extra_env": {SNAPSHOT_VARIABLE: str(prefix), "PYTHONPATH": str(REPO_ROOT)},
    }
    async with conveyor_stack(
        result.generations, poll, latency, backend, workdir, **profiled
    ) as stack:
        process = stack.process
        await asyncio.sleep(SETTLE)
        result.rss_idle = tree_rss(process)
        process.send_signal(signal.SIGUSR2)
        await _wait_for(Path(f"{prefix}.0"))
        log("profile (memory): idle snapshot taken; waiting for every generation to wait")
        await _submit_all(stack, result.generations, PROFILE_LATENCY / 2)
        await asyncio.sleep(0.5)  # let the last submissions' checkpoints commit
        result.waiting = stack.door.in_flight
        result.rss_waiting = tree_rss(process)
        process.send_signal(signal.SIGUSR2)
        await _wait_for(Path(f"{prefix}.1"))
    _read_snapshots(result, Path(f"{prefix}.0"), Path(f"{prefix}.1"))


async def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the profiled worker did not write {path.name}")
        await asyncio.sleep(0.1)


def _read_snapshots(result: Profile, idle_path: Path, waiting_path: Path) -> None:
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    ]
    idle = tracemalloc.Snapshot.load(str(idle_path)).filter_traces(ignore)
    waiting = tracemalloc.Snapshot.load(str(waiting_path)).filter_traces(ignore)
    per = max(result.waiting, 1)
    sites: defaultdict[tuple[str, str], int] = defaultdict(int)
    for diff in waiting.compare_to(idle, "traceback"):
        frames = list(reversed(diff.traceback))  # tracemalloc keeps the oldest frame first
        top = frames[0]
        site = f"{_short(top.filename)}:{top.lineno}"
        nearest = next((f for f in frames[1:] if "/conveyor/" in f.filename), None)
        ours = nearest is None or "/conveyor/" in top.filename
        via = "" if ours or nearest is None else f"{_short(nearest.filename)}:{nearest.lineno}"
        sites[(site, via)] += diff.size_diff
    result.traced_growth = sum(sites.values())
    ranked = sorted(sites.items(), key=lambda item: item[1], reverse=True)[:15]
    result.holders = [Holder(site, via, size / per, size) for (site, via), size in ranked]
    files = waiting.compare_to(idle, "filename")
    result.by_file = [(_short(str(d.traceback[0].filename)), d.size_diff / per) for d in files[:10]]
