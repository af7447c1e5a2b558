"""Conveyor against the common peer design, side by side, on one fake provider (issue 8).

The peer is Celery 5 + Redis (broker and result backend) with a gevent pool of 1,000 in
one ``celery worker`` process, polling by ``self.retry(countdown=poll)``
(``bench._peer_celery``). Conveyor is one ``conveyor worker`` process, the API in this
process, one job of N items of the ``model`` recipe (``bench._peer_conveyor``). Both drive
the provider simulator as the same fake gen-api (``bench._peer_provider``): N generations
of uniform(latency-min, latency-max) s each, polled every ``poll`` s, small PNG results.
The two sides run one after the other, each with a fresh simulator of the same seed.

The provider records every submission, poll, completion and download; each side says when
a result was stored. From that, one table: effective poll interval, done → downloaded and
done → stored lag, time until all were submitted, worker RSS idle / peak / per waiting
generation, submissions per generation, wall time and worker CPU, with issue 8's targets
as verdicts. The issue's two other targets are measured too, with ``bench._scenarios``:
10,000 generations waiting in one Conveyor worker (RSS) and end-to-end items/s with an
instant provider on SQLite and PostgreSQL. ``--profile`` adds a profile of Conveyor's
worker (``bench._peer_profile``): CPU in the submit burst, memory per waiting generation.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench._peer_celery_run import celery_unavailable, run_celery
from bench._peer_conveyor import run_conveyor
from bench._peer_profile import Profile, profile_conveyor
from bench._peer_report import render
from bench._peer_watch import SideRun, log
from bench._scenarios import CAPACITY_LATENCY, Capacity, Throughput, run_capacity, run_throughput
from bench._stack import postgres_unavailable


@dataclass(frozen=True, slots=True)
class Plan:
    """The run's sizes; ``--quick`` shrinks them to a minute or two."""

    generations: int
    poll: float
    latency: tuple[float, float]
    backend: str
    pool: int
    redis_url: str
    capacity: int
    capacity_hold: float
    throughput_items: int
    throughput_backends: tuple[str, ...]
    profile: bool
    quick: bool


@dataclass
class Results:
    plan: Plan
    celery: SideRun | None = None
    conveyor: SideRun | None = None
    capacity: Capacity | None = None
    throughput: list[Throughput] = field(default_factory=list)
    profile: Profile | None = None
    skipped: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def parse_plan(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench peer", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs, a minute or two")
    parser.add_argument("--generations", type=int, help="generations per side (2000; quick 200)")
    parser.add_argument("--poll", type=float, help="poll interval, s (5; quick 1)")
    parser.add_argument("--latency-min", type=float, help="provider latency, s (20; quick 4)")
    parser.add_argument("--latency-max", type=float, help="provider latency, s (40; quick 8)")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql"), default="sqlite", help="Conveyor's DB"
    )
    parser.add_argument("--pool", type=int, default=1000, help="Celery's gevent pool (1000)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the peer's Redis")
    parser.add_argument(
        "--capacity", type=int, help="generations held waiting in one worker (10000; quick 2000)"
    )
    parser.add_argument(
        "--throughput-items", type=int, help="instant-provider job size (2000; quick 500)"
    )
    parser.add_argument(
        "--throughput-backends", default="sqlite,postgresql", help="databases for items/s"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile Conveyor's worker (CPU, memory)"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    quick = bool(args.quick)

    def pick(value: float | None, full: float, short: float) -> float:
        return value if value is not None else (short if quick else full)

    latency = (pick(args.latency_min, 20.0, 4.0), pick(args.latency_max, 40.0, 8.0))
    if latency[1] < latency[0]:
        parser.error("--latency-max must be at least --latency-min")
    return Plan(
        generations=int(pick(args.generations, 2_000, 200)),
        poll=pick(args.poll, 5.0, 1.0),
        latency=latency,
        backend=args.backend,
        pool=args.pool,
        redis_url=args.redis,
        capacity=int(pick(args.capacity, 10_000, 2_000)),
        capacity_hold=10.0 if quick else 30.0,
        throughput_items=int(pick(args.throughput_items, 2_000, 500)),
        throughput_backends=tuple(
            b.strip() for b in args.throughput_backends.split(",") if b.strip()
        ),
        profile=bool(args.profile),
        quick=quick,
    )


async def _attempt(results: Results, what: str, step: Callable[[], Awaitable[None]]) -> None:
    """Run one part; a failure is reported in the section instead of losing the others."""
    try:
        await step()
    except Exception as exc:
        log(f"{what} failed:")
        traceback.print_exc()
        results.skipped.append(f"{what}: failed ({type(exc).__name__}: {str(exc)[:300]})")


async def run(plan: Plan) -> Results:
    results = Results(plan, load_before=os.getloadavg())
    postgres = await postgres_unavailable()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-peer-") as tmp:
        workdir = Path(tmp)
        await _run_sides(plan, results, workdir, postgres)
        await _run_extras(plan, results, workdir, postgres)
    results.load_after = os.getloadavg()
    return results


async def _run_sides(plan: Plan, results: Results, workdir: Path, postgres: str | None) -> None:
    n, poll, latency = plan.generations, plan.poll, plan.latency
    reason = celery_unavailable(plan.redis_url)
    if reason is None:
        log(f"peer: Celery + Redis, {n:,} generations of {latency[0]:g}–{latency[1]:g} s")

        async def celery() -> None:
            side = workdir / "celery"
            results.celery = await run_celery(n, poll, latency, plan.pool, plan.redis_url, side)

        await _attempt(results, "Celery (peer)", celery)
    else:
        results.skipped.append(f"Celery (peer): {reason}")
    if plan.backend == "postgresql" and postgres is not None:
        results.skipped.append(f"Conveyor on PostgreSQL: {postgres}")
        return
    log(f"Conveyor ({plan.backend}): {n:,} generations of {latency[0]:g}–{latency[1]:g} s")

    async def conveyor() -> None:
        side = workdir / "conveyor"
        results.conveyor = await run_conveyor(n, poll, latency, plan.backend, side)

    await _attempt(results, "Conveyor", conveyor)


async def _run_extras(plan: Plan, results: Results, workdir: Path, postgres: str | None) -> None:
    if plan.capacity > 0:
        log(f"capacity: {plan.capacity:,} generations waiting in one Conveyor worker")
        ramp_limit = 60.0 if plan.quick else CAPACITY_LATENCY - 40.0

        async def capacity() -> None:
            results.capacity = await run_capacity(
                plan.capacity, plan.capacity_hold, ramp_limit, workdir
            )

        await _attempt(results, "capacity", capacity)
    for kind in plan.throughput_backends if plan.throughput_items > 0 else ():
        if kind == "postgresql" and postgres is not None:
            results.skipped.append(f"throughput on PostgreSQL: {postgres}")
            continue
        log(f"throughput: {plan.throughput_items:,} items, instant provider, {kind}")

        async def throughput(kind: str = kind) -> None:
            results.throughput.append(await run_throughput(kind, plan.throughput_items, workdir))

        await _attempt(results, f"throughput ({kind})", throughput)
    if plan.profile:
        log("profile: Conveyor's worker under py-spy, then under tracemalloc")

        async def profile() -> None:
            results.profile = await profile_conveyor(
                plan.generations, plan.poll, plan.backend, workdir / "profile"
            )

        await _attempt(results, "profile", profile)


def main(argv: list[str] | None = None) -> str:
    """Run the peer comparison; returns its markdown section."""
    plan = parse_plan(argv)
    import uvloop

    return render(uvloop.run(run(plan)))
