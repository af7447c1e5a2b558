"""Product-photo benchmark: seed 004's API through the offline chain on this machine.

``--photos`` drawn product photos (default 100: a mug, a bottle with a cap, a sneaker, a
boxed product and a glass, on assorted backdrops, 800×600 to 2000×1500, JPEG) go through
``POST /process_single`` exactly as the seed's client sends them, with no provider key at
all, so the local models carry everything: ``local/analyze`` → ``local/u2netp`` →
``local/finish``. The API (uvicorn, no workers) runs in this process; the work runs in one
``conveyor worker`` process (``bench._stack.WorkerProcess``) and the engine processes it
spawns. ``--in-flight`` photos are kept in flight (default: twice the engine processes, so
the engines are never idle and a step's time is its work rather than its wait); each is
polled on ``/single_progress`` until done.

Measured: photos per minute (wall time from the first upload to the last final), p50/p95
per step from the step runs' own timings in the database (``analysis``, ``background``,
``final``: from the step's start to its result, so a wait for a free engine process is
included), peak RSS of the worker and of its engine processes (sampled every 0.25 s), and
the load average before, during and after (the machine is shared: other work inflates the
times).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFilter
from sqlalchemy import select

from bench._stack import WorkerProcess, bench_settings, fresh_database, measure, serving_api
from bench._stats import mib, percentile, seconds, table
from conveyor.core.db import Database
from conveyor.jobs.models import STEP_SUCCEEDED, step_runs

STEPS = ("analysis", "background", "final")
KINDS = ("mug", "bottle", "sneaker", "box", "glass")
BACKDROPS = ((0, 128, 128), (236, 200, 60), (214, 214, 214), (90, 110, 160), (240, 236, 228))
SIZES = ((800, 600), (1024, 768), (1280, 960), (1600, 1200), (2000, 1500))


@dataclass(frozen=True, slots=True)
class Plan:
    photos: int
    in_flight: int
    database: str
    quick: bool


@dataclass
class Results:
    plan: Plan
    engine_processes: int = 0
    wall_seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    background_models: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)
    per_photo: list[float] = field(default_factory=list)
    worker_peak_rss: int = 0
    engines_peak_rss: int = 0
    total_peak_rss: int = 0
    load: dict[str, float] = field(default_factory=dict)
    megapixels: float = 0.0
    upload_bytes: int = 0


def draw_photo(index: int) -> tuple[str, bytes]:
    """One product photo: kind, backdrop and size vary with ``index`` (deterministic)."""
    rng = random.Random(index)
    kind = KINDS[index % len(KINDS)]
    width, height = SIZES[(index // len(KINDS)) % len(SIZES)]
    backdrop = BACKDROPS[rng.randrange(len(BACKDROPS))]
    image = Image.new("RGB", (width, height), backdrop)
    # A soft vertical light falloff, as on a real table top.
    shade = Image.linear_gradient("L").resize((width, height)).point(lambda v: v // 6)
    image.paste(Image.new("RGB", (width, height), (0, 0, 0)), mask=shade)
    draw = ImageDraw.Draw(image)
    s = min(width / 800, height / 600)
    cx, cy = width / 2 + rng.uniform(-60, 60) * s, height / 2 + rng.uniform(-30, 30) * s
    colour = tuple(rng.randrange(30, 220) for _ in range(3))
    if kind == "mug":
        draw.rounded_rectangle(
            (cx - 110 * s, cy - 150 * s, cx + 90 * s, cy + 160 * s), 24 * s, colour
        )
        draw.ellipse(
            (cx + 60 * s, cy - 80 * s, cx + 170 * s, cy + 60 * s), outline=colour, width=int(26 * s)
        )
    elif kind == "bottle":
        draw.rounded_rectangle(
            (cx - 70 * s, cy - 120 * s, cx + 70 * s, cy + 220 * s), 40 * s, colour
        )
        draw.rectangle((cx - 28 * s, cy - 230 * s, cx + 28 * s, cy - 115 * s), colour)
        draw.rectangle((cx - 34 * s, cy - 260 * s, cx + 34 * s, cy - 225 * s), (20, 20, 20))
        draw.rectangle((cx - 70 * s, cy - 10 * s, cx + 70 * s, cy + 80 * s), (245, 245, 245))
    elif kind == "sneaker":
        white = (246, 246, 246)
        draw.polygon(
            [
                (cx - 240 * s, cy + 80 * s),
                (cx - 200 * s, cy - 40 * s),
                (cx - 40 * s, cy - 90 * s),
                (cx + 90 * s, cy - 20 * s),
                (cx + 240 * s, cy + 30 * s),
                (cx + 240 * s, cy + 80 * s),
            ],
            white,
        )
        draw.rectangle((cx - 245 * s, cy + 80 * s, cx + 245 * s, cy + 110 * s), colour)
    elif kind == "box":
        draw.polygon(
            [
                (cx - 180 * s, cy - 80 * s),
                (cx + 60 * s, cy - 150 * s),
                (cx + 200 * s, cy - 90 * s),
                (cx + 200 * s, cy + 170 * s),
                (cx - 40 * s, cy + 220 * s),
                (cx - 180 * s, cy + 150 * s),
            ],
            colour,
        )
        draw.line(
            (cx - 40 * s, cy - 20 * s, cx - 40 * s, cy + 220 * s),
            fill=(20, 20, 20),
            width=int(4 * s),
        )
    else:  # glass: light, partly see-through
        glass = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        ImageDraw.Draw(glass).polygon(
            [
                (cx - 110 * s, cy - 180 * s),
                (cx + 110 * s, cy - 180 * s),
                (cx + 80 * s, cy + 190 * s),
                (cx - 80 * s, cy + 190 * s),
            ],
            (225, 238, 245, 150),
        )
        image = Image.alpha_composite(image.convert("RGBA"), glass).convert("RGB")
    image = image.filter(ImageFilter.GaussianBlur(0.6 * s))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return f"{index:03d}-{kind}.jpg", buffer.getvalue()


async def run(plan: Plan) -> Results:
    results = Results(plan)
    photos = [draw_photo(n) for n in range(plan.photos)]
    results.upload_bytes = sum(len(data) for _, data in photos)
    results.megapixels = statistics.fmean(
        math.prod(SIZES[(n // len(KINDS)) % len(SIZES)]) / 1e6 for n in range(plan.photos)
    )
    with tempfile.TemporaryDirectory(prefix="bench-photos-") as workdir:
        work = Path(workdir)
        async with fresh_database(plan.database, work) as backend:
            # No provider key, no simulator: every remote model is skipped for want of a key.
            settings = bench_settings(backend, work / "data", "http://127.0.0.1:9", simulate=False)
            results.engine_processes = settings.process_pool_size
            worker = WorkerProcess(settings, work / "worker.log")
            async with worker, serving_api(settings) as (base_url, _app):
                await _process(plan, results, base_url, photos, worker)
            await _step_times(backend.url, results)
    return results


async def _process(
    plan: Plan,
    results: Results,
    base_url: str,
    photos: list[tuple[str, bytes]],
    worker: WorkerProcess,
) -> None:
    stop = asyncio.Event()
    loads: list[float] = []

    async def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                assert worker.ps is not None
                own = worker.rss()
                engines = sum(c.memory_info().rss for c in worker.ps.children(recursive=True))
                results.worker_peak_rss = max(results.worker_peak_rss, own)
                results.engines_peak_rss = max(results.engines_peak_rss, engines)
                results.total_peak_rss = max(results.total_peak_rss, own + engines)
            loads.append(os.getloadavg()[0])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    results.load["before"] = os.getloadavg()[0]
    sampler = asyncio.create_task(sample())
    window = asyncio.Semaphore(plan.in_flight)
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as http:

        async def one(name: str, data: bytes) -> None:
            async with window:
                began = time.perf_counter()
                started = await http.post("/process_single", files={"file": (name, data)})
                if started.status_code != 200:
                    results.statuses["refused"] += 1
                    results.errors.append(f"{name}: {started.status_code} {started.text[:200]}")
                    return
                pid = started.json()["processing_id"]
                while True:
                    status = (await http.get(f"/single_progress/{pid}")).json()
                    if status["status"] != "processing":
                        break
                    await asyncio.sleep(0.25)
                results.per_photo.append(time.perf_counter() - began)
                results.statuses[status["status"]] += 1
                if status["status"] == "completed":
                    results.background_models[str(status.get("background_model"))] += 1
                else:
                    results.errors.append(f"{name}: {status['error']}")

        started = time.perf_counter()
        await asyncio.gather(*(one(name, data) for name, data in photos))
        results.wall_seconds = time.perf_counter() - started
    stop.set()
    await sampler
    results.load["during (mean)"] = statistics.fmean(loads) if loads else math.nan
    results.load["during (max)"] = max(loads, default=math.nan)
    results.load["after"] = os.getloadavg()[0]


async def _step_times(url: str, results: Results) -> None:
    db = Database(url, pool_size=1)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(step_runs.c.step, step_runs.c.started_at, step_runs.c.finished_at).where(
                    step_runs.c.status == STEP_SUCCEEDED
                )
            )
            for step, began, ended in rows:
                results.steps.setdefault(step, []).append((ended - began).total_seconds())
    finally:
        await db.dispose()


def render(r: Results) -> str:
    plan = r.plan
    per_minute = r.statuses["completed"] / r.wall_seconds * 60 if r.wall_seconds else 0.0
    rows = [
        [
            "photos completed / error / refused",
            f"{r.statuses['completed']} / {r.statuses['error']} / {r.statuses['refused']}",
        ],
        ["wall time, first upload to last final", seconds(r.wall_seconds, 1)],
        ["**photos per minute**", f"**{per_minute:.1f}**"],
        [
            "per photo, upload to `completed` (p50 / p95)",
            f"{seconds(percentile(r.per_photo, 50))} / {seconds(percentile(r.per_photo, 95))}",
        ],
    ]
    for step in (*STEPS, *sorted(set(r.steps) - set(STEPS))):
        times = r.steps.get(step, [])
        rows.append(
            [
                f"step `{step}` (p50 / p95, {len(times)} runs)",
                f"{seconds(percentile(times, 50))} / {seconds(percentile(times, 95))}",
            ]
        )
    rows += [
        ["cut-outs made by", ", ".join(f"`{m}` × {n}" for m, n in r.background_models.items())],
        ["worker process peak RSS", mib(r.worker_peak_rss)],
        [f"engine processes ({r.engine_processes}) peak RSS, together", mib(r.engines_peak_rss)],
        ["worker + engines peak RSS", mib(r.total_peak_rss)],
        [
            "load average (1 min): before / during mean / during max / after",
            " / ".join(
                f"{r.load.get(k, math.nan):.1f}"
                for k in ("before", "during (mean)", "during (max)", "after")
            ),
        ],
    ]
    lines = [
        f"Mode **{'quick' if plan.quick else 'full'}**: {plan.photos} drawn product photos "
        f"({', '.join(KINDS)}; 800×600 to 2000×1500, mean {r.megapixels:.1f} MP, JPEG, "
        f"{r.upload_bytes / 2**20:.1f} MiB in all) through `POST /process_single` with no "
        f"provider key (local chain), {plan.in_flight} photos in flight, each polled on "
        f"`/single_progress`; {plan.database}; one `conveyor worker` process with "
        f"{r.engine_processes} engine processes on {os.cpu_count()} CPUs. Step times are "
        "the step runs' own (start to stored result, a wait for a free engine process "
        "included).",
        "",
        table(["measure", "value"], rows),
    ]
    if r.errors:
        lines += ["", "Errors (first 5):", *[f"- {e}" for e in r.errors[:5]]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; print and return its markdown section."""
    parser = argparse.ArgumentParser(prog="bench.photos", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=None, help="photos (100; quick: 10)")
    parser.add_argument("--in-flight", type=int, default=None, help="photos at once (2 × CPUs)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="10 photos")
    args = parser.parse_args(argv)
    plan = Plan(
        photos=args.photos or (10 if args.quick else 100),
        in_flight=args.in_flight or 2 * max(1, os.cpu_count() or 1),
        database=args.database,
        quick=args.quick,
    )
    return measure(run(plan), render)


if __name__ == "__main__":
    main()
