"""Word-media batch benchmark: seed 002's API with a big batch against the simulator.

One batch of ``--words`` words (default 1,000), each asking for a picture and a
pronunciation, goes through ``POST /api/media/generate-batch/`` as the flashcard app's front
end sends it (``Authorization: Token <key>``), then the task is polled every 2 s, as the
seed's front end would, until it ends. Pictures come from the simulator's gen-api
``z-image`` (submit, then poll), audio from its OpenAI-compatible speech endpoint (one call
that answers after its latency); every provider call takes uniform(``--latency-min``,
``--latency-max``) seconds, 2–8 s by default. The API (uvicorn, no workers) and the
simulator run in this process; the work runs in one ``conveyor worker`` process whose RSS is
sampled every 0.25 s.

Provider limits: by default the gen-api and OpenAI specs are stored with their request
limits sized to the HTTP pool (as the engine benchmark does), so the run measures Conveyor,
not an account's quota; ``--shipped-limits`` keeps the shipped ones (gen-api: 10 requests/s,
which bounds 1,000 pictures to several minutes by design) and reports that bound.

Measured: time to accept the batch, to the first finished word and to the end; provider
calls (simulator counters: submissions by model, polls); words completed, partial, failed;
peak RSS and CPU time of the worker; the time a 2 s poll of the whole task takes; and the
machine's load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._stack import (
    WorkerProcess,
    bench_settings,
    fresh_database,
    load_sized_spec,
    measure,
    serving_api,
)
from bench._stats import mib, percentile, seconds, table
from conveyor.providers.http import read_specs
from conveyor.sim import SimConfig, start_simulator

SPEECH_MODEL = "tts-1"  # the openai/speech spec's model name
PICTURE_MODEL = "z-image"
PROVIDERS = ("genapi", "openai")
POLL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Plan:
    words: int
    latency: tuple[float, float]
    database: str
    shipped_limits: bool
    quick: bool


@dataclass
class Results:
    plan: Plan
    accept_seconds: float = 0.0
    first_word_seconds: float = 0.0
    finish_seconds: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)
    submissions: dict[str, dict[str, int]] = field(default_factory=dict)
    polls: int = 0
    sim_errors: dict[str, Any] = field(default_factory=dict)
    task_reads: list[float] = field(default_factory=list)
    progress_seen: list[int] = field(default_factory=list)
    worker_peak_rss: int = 0
    worker_idle_rss: int = 0
    worker_cpu: float = 0.0
    bench_peak_rss: int = 0
    limits: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # The worker's warnings and errors, counted by their first words (why calls repeat).
    worker_log: dict[str, int] = field(default_factory=dict)


def build_words(count: int) -> list[dict[str, Any]]:
    languages = ("en", "ru", "de", "es", "fr")
    return [
        {"word": f"word{n:05d}", "language": languages[n % len(languages)], "card_id": n}
        for n in range(count)
    ]


async def run(plan: Plan) -> Results:
    results = Results(plan)
    results.load_before = os.getloadavg()
    specs = {spec.name: spec for spec in read_specs()}
    config = SimConfig(
        latency_min=plan.latency[0],
        latency_max=plan.latency[1],
        # Small files: the simulator draws each one, and that would measure the fake.
        max_image_side=64,
        max_audio_seconds=2.0,
        seed=11,
    )
    with tempfile.TemporaryDirectory(prefix="bench-media-") as workdir:
        work = Path(workdir)
        simulator = await start_simulator(config)
        try:
            async with fresh_database(plan.database, work) as backend:
                settings = bench_settings(backend, work / "data", simulator.base_url)
                async with serving_api(settings) as (base_url, app):
                    runtime = app.state.runtime
                    for provider in PROVIDERS:
                        spec = specs[provider]
                        if plan.shipped_limits:
                            results.limits[provider] = (
                                spec.limits.max_in_flight,
                                spec.limits.requests_per_second,
                            )
                            continue
                        # Stored before the worker starts, so the worker loads it.
                        await runtime.catalog.add_provider(
                            load_sized_spec(provider, settings.http_pool_size),
                            origin="bench",
                            replace=True,
                        )
                        results.limits[provider] = (settings.http_pool_size, None)
                    key, _ = await runtime.clients.create_key("flashcards")
                    async with WorkerProcess(settings, work / "worker.log") as worker:
                        results.worker_idle_rss = worker.rss()
                        await _batch(plan, results, base_url, key, worker)
                    results.worker_log = _warnings(work / "worker.log")
            counters = simulator.counters()
            results.submissions = {p: dict(counters["submissions"].get(p, {})) for p in PROVIDERS}
            results.polls = sum(dict(counters["polls"]).values())
            results.sim_errors = {
                "rate_limited": counters["rate_limited"],
                "server_errors": counters["server_errors"],
            }
        finally:
            await simulator.close()
    results.bench_peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    results.load_after = os.getloadavg()
    return results


async def _batch(
    plan: Plan, results: Results, base_url: str, key: str, worker: WorkerProcess
) -> None:
    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            with contextlib.suppress(Exception):
                peak = max(peak, worker.rss())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    sampler = asyncio.create_task(sample())
    headers = {"Authorization": f"Token {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300) as http:
        started = time.perf_counter()
        answer = await http.post(
            "/api/media/generate-batch/", json={"words": build_words(plan.words)}
        )
        results.accept_seconds = time.perf_counter() - started
        if answer.status_code != 201:
            raise RuntimeError(f"batch refused: {answer.status_code} {answer.text[:500]}")
        task_id = answer.json()["task_id"]
        while True:
            asked = time.perf_counter()
            task = (await http.get(f"/api/media/tasks/{task_id}/")).json()
            now = time.perf_counter()
            results.task_reads.append(now - asked)
            results.progress_seen.append(task["progress"])
            done = task["completed_words"] + task["failed_words"] + task["cancelled_words"]
            if done and not results.first_word_seconds:
                results.first_word_seconds = now - started
            if task["status"] in ("completed", "failed", "cancelled"):
                results.finish_seconds = now - started
                results.final = task
                break
            await asyncio.sleep(POLL_SECONDS)
    stop.set()
    await sampler
    results.worker_peak_rss = peak
    results.worker_cpu = worker.cpu_seconds()


def render(r: Results) -> str:
    plan = r.plan
    final = r.final
    made = {"image": 0, "audio": 0}
    models: dict[str, int] = {}
    for word in final.get("results", []):
        for medium, out in (word.get("media") or {}).items():
            if out.get("status") == "completed":
                made[medium] += 1
                models[out["model"]] = models.get(out["model"], 0) + 1
    pictures = r.submissions.get("genapi", {}).get(PICTURE_MODEL, 0)
    speech = r.submissions.get("openai", {}).get(SPEECH_MODEL, 0)
    mean_latency = statistics.fmean(plan.latency)
    rows = [
        ["time to accept (POST → 201, client side)", seconds(r.accept_seconds)],
        ["time to the first finished word", seconds(r.first_word_seconds)],
        [f"time to finish (`{final.get('status')}`)", seconds(r.finish_seconds)],
        [
            "words completed / partial / failed",
            f"{final.get('completed_words', 0) - final.get('partial_words', 0):,} / "
            f"{final.get('partial_words', 0):,} / {final.get('failed_words', 0):,}",
        ],
        ["media made (image / audio)", f"{made['image']:,} / {made['audio']:,}"],
        ["media by model", ", ".join(f"{m} {n:,}" for m, n in sorted(models.items()))],
        [
            "provider calls (z-image submissions + speech calls)",
            f"{pictures + speech:,} ({pictures:,} + {speech:,}); minimum {2 * plan.words:,}",
        ],
        ["gen-api polls", f"{r.polls:,} ({r.polls / max(pictures, 1):.1f} per picture)"],
        [
            "simulator 429s / 5xx",
            f"{_total(r.sim_errors.get('rate_limited'))} / "
            f"{_total(r.sim_errors.get('server_errors'))}",
        ],
        [
            "progress as the front end saw it (every 2 s)",
            " → ".join(str(p) for p in _thin(r.progress_seen)),
        ],
        [
            "one poll of the whole task (GET tasks/{id}/) p50 / max",
            f"{seconds(percentile(r.task_reads, 50), 3)} / {seconds(max(r.task_reads), 3)}",
        ],
        [
            "worker log warnings / errors",
            "; ".join(f"{n} × `{text}`" for text, n in sorted(r.worker_log.items())) or "none",
        ],
        ["worker RSS idle → peak", f"{mib(r.worker_idle_rss)} → {mib(r.worker_peak_rss)}"],
        ["worker CPU time", seconds(r.worker_cpu, 1)],
        ["this process peak RSS (API + simulator + client)", mib(r.bench_peak_rss)],
        [
            "load average (1, 5, 15 min) before → after",
            f"{_load(r.load_before)} → {_load(r.load_after)}",
        ],
    ]
    limits = "; ".join(
        f"{name}: {in_flight} in flight" + (f", {rate:g} requests/s" if rate else ", no rate cap")
        for name, (in_flight, rate) in r.limits.items()
    )
    bound = _bound(r, plan, mean_latency)
    return "\n".join(
        [
            f"Mode **{'quick' if plan.quick else 'full'}**: one batch of {plan.words:,} words "
            "× (image + audio), languages en/ru/de/es/fr in turn, through `POST "
            "/api/media/generate-batch/` with a `Token` key, polled every 2 s as the seed's "
            f"front end would; {plan.database}; simulator latency uniform({plan.latency[0]:g}, "
            f"{plan.latency[1]:g}) s per provider call (gen-api `z-image` submit-and-poll, "
            "OpenAI-compatible speech answered in the call), 64 px pictures, ≤ 2 s audio; "
            f"provider limits {'as shipped' if plan.shipped_limits else 'sized to the HTTP pool'} "
            f"({limits}); one `conveyor worker` process with default settings.",
            "",
            table(["measure", "value"], rows),
            "",
            bound,
        ]
    )


def _bound(r: Results, plan: Plan, mean_latency: float) -> str:
    """What the providers' limits and latencies allow at best, to read the time against."""
    pictures = max(1, r.submissions.get("genapi", {}).get(PICTURE_MODEL, 0))
    requests_per_picture = 1 + r.polls / pictures
    genapi_rate = r.limits.get("genapi", (0, None))[1]
    openai_in_flight, openai_rate = r.limits.get("openai", (0, None))
    parts = [f"every word needs at least one latency (≤ {plan.latency[1]:g} s)"]
    if genapi_rate:
        parts.append(
            f"pictures need ≥ {plan.words * requests_per_picture / genapi_rate:.0f} s at "
            f"{genapi_rate:g} gen-api requests/s ({requests_per_picture:.1f} requests each)"
        )
    speech_rate = min(openai_rate or float("inf"), openai_in_flight / mean_latency)
    cap = f", {openai_rate:g}/s cap" if openai_rate else ""
    parts.append(
        f"audio needs ≥ {plan.words / speech_rate:.0f} s at {speech_rate:.1f} speech calls/s "
        f"({openai_in_flight} in flight / {mean_latency:g} s mean latency{cap})"
    )
    return "Lower bound from the limits: " + "; ".join(parts) + "."


def _warnings(log_path: Path) -> dict[str, int]:
    """Warning and error lines of the worker's log (``time level logger: message``), grouped
    by level, logger and the message's first words."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            fields = line.split(" ", 3)
            if len(fields) == 4 and fields[2] in ("WARNING", "ERROR", "CRITICAL"):
                text = f"{fields[2]} {fields[3][:90]}"
                found[text] = found.get(text, 0) + 1
    return found


def _thin(values: list[int], keep: int = 12) -> list[int]:
    if len(values) <= keep:
        return values
    step = (len(values) - 1) / (keep - 1)
    return [values[round(i * step)] for i in range(keep)]


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _total(value: Any) -> int:
    return sum(value.values()) if isinstance(value, dict) else int(value or 0)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; print and return its markdown section."""
    parser = argparse.ArgumentParser(prog="bench.media", description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=None, help="words in the batch (1000)")
    parser.add_argument("--latency-min", type=float, default=2.0)
    parser.add_argument("--latency-max", type=float, default=8.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--shipped-limits", action="store_true", help="keep the specs' request limits"
    )
    parser.add_argument("--quick", action="store_true", help="100 words")
    args = parser.parse_args(argv)
    plan = Plan(
        words=args.words or (100 if args.quick else 1000),
        latency=(args.latency_min, args.latency_max),
        database=args.database,
        shipped_limits=args.shipped_limits,
        quick=args.quick,
    )
    return measure(run(plan), render)


if __name__ == "__main__":
    main()
