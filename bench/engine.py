"""Engine benchmark: throughput, in-flight capacity, polling accuracy, lag, job creation.

Everything runs against the provider simulator acting as issue 2's fake provider: gen-api's
``z-image`` network, tasks finishing uniform(30, 60) s × ``--scale`` after submission (0 s
for the "instant" provider), polled with the shipped spec's protocol (1 s first, backing off
×1.5 to the configured 3 s, ±10 % jitter). The simulator runs in this process behind a
stopwatch (``bench._sim``); the worker is a separate ``conveyor worker`` process
(``bench._stack.WorkerProcess``, with the provider's request limits sized for the load) so its
RSS is its own; each
scenario gets a fresh database. See ``bench._scenarios`` for what each one measures.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench._scenarios import (
    CAPACITY_LATENCY,
    CREATION_ITEMS,
    Capacity,
    Creation,
    Throughput,
    Timing,
    log,
    run_capacity,
    run_creation,
    run_throughput,
    run_timing,
)
from bench._stack import postgres_unavailable
from bench._stats import percentile, seconds, table, verdict

POLL_INTERVAL = 3.0  # genapi.yaml: poll.interval

# Issue 2's targets for a 2-core machine.
TARGET_IN_FLIGHT = 10_000
TARGET_RSS = 300 * 10**6
TARGET_POLL_P99 = 1.2 * POLL_INTERVAL
TARGET_LAG_P99 = POLL_INTERVAL + 1.0
TARGET_CREATE = 0.5
TARGET_RATE = 300.0


@dataclass(frozen=True, slots=True)
class Plan:
    """How big each scenario is; ``--quick`` shrinks them to about a minute and a half."""

    items: int
    in_flight: int
    hold: float
    ramp_limit: float
    timing_items: int
    scale: float
    repeats: int
    backends: tuple[str, ...]
    quick: bool


@dataclass
class Results:
    plan: Plan
    creation: list[Creation]
    throughput: list[Throughput]
    capacity: Capacity | None
    timing: Timing | None
    skipped: list[str]
    load_before: tuple[float, float, float]


def parse_plan(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs, about 1.5 minutes")
    parser.add_argument("--items", type=int, help="throughput job size (2000; quick 500)")
    parser.add_argument("--in-flight", type=int, help="capacity job size (10000; quick 2000)")
    parser.add_argument("--timing-items", type=int, help="timing job size (2000; quick 500)")
    parser.add_argument("--scale", type=float, help="latency factor for timing (1; quick 0.25)")
    parser.add_argument("--repeats", type=int, help="timed job creations per path (7; quick 3)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return Plan(
        items=args.items or (500 if quick else 2_000),
        in_flight=args.in_flight or (2_000 if quick else 10_000),
        hold=10.0 if quick else 30.0,
        ramp_limit=60.0 if quick else CAPACITY_LATENCY - 40.0,
        timing_items=args.timing_items or (500 if quick else 2_000),
        scale=args.scale if args.scale is not None else (0.25 if quick else 1.0),
        repeats=args.repeats or (3 if quick else 7),
        backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()),
        quick=quick,
    )


async def run(plan: Plan) -> Results:
    skipped: list[str] = []
    backends = list(plan.backends)
    if "postgresql" in backends:
        reason = await postgres_unavailable()
        if reason is not None:
            backends.remove("postgresql")
            skipped.append(f"PostgreSQL ({reason})")
    results = Results(plan, [], [], None, None, skipped, os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        workdir = Path(tmp)
        for kind in backends:
            log(f"creation: {CREATION_ITEMS:,}-item jobs on {kind}")
            results.creation.append(await run_creation(kind, plan.repeats, workdir))
        for kind in backends:
            log(f"throughput: {plan.items:,} items, instant provider, {kind}")
            results.throughput.append(await run_throughput(kind, plan.items, workdir))
        log(f"capacity: {plan.in_flight:,} items that stay in flight")
        results.capacity = await run_capacity(plan.in_flight, plan.hold, plan.ramp_limit, workdir)
        log(f"timing: {plan.timing_items:,} items, latency (30–60 s) × {plan.scale:g}")
        results.timing = await run_timing(plan.timing_items, plan.scale, workdir)
    return results


# -- report --------------------------------------------------------------------------------


def _pair(values: list[float]) -> str:
    return f"{seconds(percentile(values, 50))} / {seconds(percentile(values, 99))}"


def _p99_within(values: list[float], limit: float) -> bool | None:
    return percentile(values, 99) <= limit if values else None


def target_rows(r: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    full = r.capacity is not None and r.capacity.items >= TARGET_IN_FLIGHT
    if r.capacity is not None:
        c = r.capacity
        peak = c.peak_in_flight
        rows.append(
            [
                "items in flight in one worker process",
                f"≥ {TARGET_IN_FLIGHT:,}",
                f"{peak:,} of {c.items:,} (ramp {seconds(c.ramp_seconds, 0)})",
                verdict(peak >= TARGET_IN_FLIGHT if full else None),
            ]
        )
        rows.append(
            [
                f"worker RSS with {peak:,} in flight",
                f"< {TARGET_RSS // 10**6} MB",
                f"{c.rss_at_peak / 1e6:.0f} MB (idle {c.idle_rss / 1e6:.0f} MB)",
                verdict(c.rss_at_peak < TARGET_RSS if full else None),
            ]
        )
        per_item = (c.rss_at_peak - c.idle_rss) / peak if peak else math.nan
        rows.append(["RSS per in-flight item", "—", f"{per_item / 1024:.1f} KiB", "info"])
        rows.append(
            [
                f"poll interval p50 / p99, {c.held_in_flight:,} waiting (configured 3 s)",
                f"p99 ≤ {TARGET_POLL_P99:.1f} s",
                _pair(c.steady_intervals),
                verdict(_p99_within(c.steady_intervals, TARGET_POLL_P99)),
            ]
        )
    if r.timing is not None:
        t = r.timing
        rows.append(
            [
                f"poll interval p50 / p99, {t.items:,} items to completion",
                f"p99 ≤ {TARGET_POLL_P99:.1f} s",
                _pair(t.steady_intervals),
                verdict(_p99_within(t.steady_intervals, TARGET_POLL_P99)),
            ]
        )
        rows.append(
            [
                f"provider done → result stored p50 / p99 ({t.items:,} items)",
                f"p99 ≤ {TARGET_LAG_P99:g} s",
                _pair(t.done_to_stored),
                verdict(_p99_within(t.done_to_stored, TARGET_LAG_P99)),
            ]
        )
    for created in r.creation:
        median = percentile(created.api, 50)
        sqlite = created.backend == "sqlite"
        rows.append(
            [
                f"{CREATION_ITEMS:,}-item job accepted, POST /v1/jobs, {created.backend}",
                f"≤ {TARGET_CREATE} s" if sqlite else "—",
                f"{seconds(median, 3)} median, {seconds(max(created.api), 3)} max",
                verdict(median <= TARGET_CREATE) if sqlite else "info",
            ]
        )
    for run_ in r.throughput:
        rows.append(
            [
                f"end to end, instant provider, {run_.backend}",
                f"≥ {TARGET_RATE:.0f} items/s",
                f"{run_.rate:.0f} items/s ({run_.completed:,} in {run_.seconds:.1f} s)",
                verdict(run_.rate >= TARGET_RATE and run_.failed == 0),
            ]
        )
    return rows


def render(r: Results) -> str:
    plan = r.plan
    load = ", ".join(f"{x:.2f}" for x in r.load_before)
    parts = [
        f"Mode **{'quick' if plan.quick else 'full'}**. Fake provider: the simulator's gen-api "
        f"`z-image`, latency uniform(30, 60) s × {plan.scale:g} in the timing run "
        f"({30 * plan.scale:g}–{60 * plan.scale:g} s), 0 s in the throughput runs, "
        f"{CAPACITY_LATENCY:g} s (never finishing during the run) in the capacity run; "
        "configured poll interval 3 s (shipped spec: 1 s first, ×1.5 backoff, ±10 % jitter); "
        "64 px result images. Worker: one `conveyor worker` process with default settings "
        "(concurrency raised for the capacity and timing runs) and gen-api's request limits "
        "raised to the HTTP pool size (300 in flight, no rate cap). Load average before the "
        f"run: {load} (the machine is shared).",
        "",
        table(["measure", "target", "measured", "verdict"], target_rows(r)),
    ]
    if plan.quick:
        parts += [
            "",
            f"Quick mode holds {plan.in_flight:,} items, not 10,000: the in-flight and RSS "
            "targets are not judged (n/a).",
        ]
    parts += _details(r)
    if r.skipped:
        parts += ["", "Skipped: " + "; ".join(r.skipped)]
    return "\n".join(parts)


def _details(r: Results) -> list[str]:
    out: list[str] = []
    if r.throughput:
        out += ["", "**End to end, instant provider** (one job, one worker process)", ""]
        out.append(
            table(
                [
                    "database",
                    "items",
                    "wall",
                    "items/s",
                    "steady items/s (p10–p90)",
                    "failed",
                    "assets",
                    "worker CPU",
                    "simulator + bench CPU",
                ],
                [
                    [
                        t.backend,
                        f"{t.items:,}",
                        seconds(t.seconds, 1),
                        f"{t.rate:.0f}",
                        f"{t.steady_rate:.0f}",
                        t.failed,
                        f"{t.stored_assets:,}",
                        f"{t.worker_cpu:.0f} s ({100 * t.worker_cpu / t.seconds:.0f} %)",
                        f"{t.bench_cpu:.0f} s ({100 * t.bench_cpu / t.seconds:.0f} %)",
                    ]
                    for t in r.throughput
                ],
            )
        )
    if r.creation:
        out += ["", f"**Creating a {CREATION_ITEMS:,}-item job** (s; median / min / max)", ""]
        out.append(
            table(
                ["database", "POST /v1/jobs round trip", "JobService prepare + create", "runs"],
                [[c.backend, _mmm(c.api), _mmm(c.service), len(c.api)] for c in r.creation],
            )
        )
    if r.capacity is not None:
        c = r.capacity
        out += [
            "",
            f"**Capacity** ({c.items:,} items, SQLite): peak {c.peak_in_flight:,} in flight "
            f"after {seconds(c.ramp_seconds, 0)}, held {c.hold:g} s with "
            f"{c.held_in_flight:,} in flight; worker RSS max {c.max_rss / 1e6:.0f} MB; worker "
            f"CPU while holding {100 * c.worker_cpu_share:.0f} % of one core (simulator "
            f"{100 * c.simulator_cpu_share:.0f} %); steady poll "
            f"intervals while holding p50 / p99 / max {_pair(c.steady_intervals)} / "
            f"{seconds(max(c.steady_intervals, default=math.nan))}.",
        ]
    if r.timing is not None:
        t = r.timing
        out += ["", f"**Timing** ({t.items:,} items, SQLite, one worker process)", ""]
        out.append(
            table(
                ["measure", "p50", "p99", "max", "n"],
                [
                    ["poll interval after the backoff (3 s)", *_dist(t.steady_intervals)],
                    ["first two intervals (1.5 s, 2.25 s nominal)", *_dist(t.first_intervals)],
                    ["provider done → the poll that saw it", *_dist(t.done_to_poll)],
                    ["provider done → result download began", *_dist(t.done_to_download)],
                    ["provider done → item committed with its result", *_dist(t.done_to_stored)],
                ],
            )
        )
        state = "did NOT finish in time" if t.unfinished else "finished"
        out += [
            "",
            f"The job {state} in {seconds(t.total_seconds, 0)}: completed {t.completed:,}, "
            f"failed {t.failed:,}; provider submissions {t.submissions:,} (one per item: none "
            f"twice); peak in flight {t.peak_in_flight:,}; worker CPU {t.worker_cpu:.0f} s "
            f"({100 * t.worker_cpu / t.total_seconds:.0f} % of one core).",
        ]
    return out


def _mmm(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{percentile(values, 50):.3f} / {min(values):.3f} / {max(values):.3f}"


def _dist(values: list[float]) -> list[str]:
    if not values:
        return ["—", "—", "—", "0"]
    high = max(values)
    return [
        seconds(percentile(values, 50)),
        seconds(percentile(values, 99)),
        seconds(high),
        f"{len(values):,}",
    ]


def main(argv: list[str] | None = None) -> str:
    """Run the engine benchmark; returns its markdown section."""
    plan = parse_plan(argv)
    import uvloop

    return render(uvloop.run(run(plan)))
