"""Fair share between clients: one client's big batch running, another's one-item sync request.

Issue 13's measure: with one client's batch of N items (5,000) at a slow fake provider, another
client's one-item request with ``wait`` must answer within 2× the time it takes on an idle
server. One ``conveyor worker`` process with default settings (its fair reserve keeps part of
its slots for clients other than the one filling the queue), the API in this process, the
simulator's gen-api ``z-image`` as the provider for both clients (the spec's request limits
raised to the HTTP pool, as the other benchmarks do), polled as shipped.

The lone request is timed three times on the idle server, then three times once the batch
fills the worker; the batch is cancelled afterwards. Times are the client's, request to answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench._stack import (
    WorkerProcess,
    bench_settings,
    fresh_database,
    load_sized_spec,
    measure,
    serving_api,
)
from bench._stats import seconds, table, verdict
from conveyor.sim import RunningSimulator, SimConfig, start_simulator

MODEL = "genapi/z-image"
REPEATS = 3
# The batch "fills the worker" once this many of its items are at the provider.
BUSY_AT = 500


@dataclass(frozen=True, slots=True)
class Plan:
    items: int
    latency: tuple[float, float]
    database: str


@dataclass(slots=True)
class Results:
    plan: Plan
    idle: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    at_provider_when_timed: list[int] = field(default_factory=list)
    batch_done_when_timed: list[int] = field(default_factory=list)
    concurrency: int = 0
    fair_reserve: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


async def _lone_request(http: httpx.AsyncClient, n: int) -> float:
    started = time.perf_counter()
    answer = await http.post(
        "/v1/jobs", json={"model": MODEL, "items": [{"prompt": f"one lot {n}"}], "wait": 300}
    )
    elapsed = time.perf_counter() - started
    if answer.status_code != 200 or answer.json()["status"] != "completed":
        raise RuntimeError(f"lone request did not finish: {answer.status_code} {answer.text[:300]}")
    return elapsed


async def run(plan: Plan) -> Results:
    results = Results(plan)
    results.load_before = os.getloadavg()
    config = SimConfig(
        latency_min=plan.latency[0], latency_max=plan.latency[1], max_image_side=64, seed=5
    )
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as workdir:
        work = Path(workdir)
        simulator = await start_simulator(config)
        try:
            async with fresh_database(plan.database, work) as backend:
                settings = bench_settings(backend, work / "data", simulator.base_url)
                results.concurrency = settings.worker_concurrency
                results.fair_reserve = settings.worker_fair_reserve
                async with serving_api(settings) as (base_url, app):
                    runtime = app.state.runtime
                    await runtime.catalog.add_provider(
                        load_sized_spec("genapi", settings.http_pool_size),
                        origin="bench",
                        replace=True,
                    )
                    bulk_key, _ = await runtime.clients.create_key("bulk")
                    lone_key, _ = await runtime.clients.create_key("lone")
                    async with (
                        WorkerProcess(settings, work / "worker.log"),
                        httpx.AsyncClient(
                            base_url=base_url,
                            headers={"Authorization": f"Bearer {bulk_key}"},
                            timeout=300,
                        ) as bulk,
                        httpx.AsyncClient(
                            base_url=base_url,
                            headers={"Authorization": f"Bearer {lone_key}"},
                            timeout=330,
                        ) as lone,
                    ):
                        for n in range(REPEATS):
                            results.idle.append(await _lone_request(lone, n))
                        await _loaded(plan, results, bulk, lone, simulator)
        finally:
            await simulator.close()
    results.load_after = os.getloadavg()
    return results


async def _loaded(
    plan: Plan,
    results: Results,
    bulk: httpx.AsyncClient,
    lone: httpx.AsyncClient,
    simulator: RunningSimulator,
) -> None:
    created = await bulk.post(
        "/v1/jobs",
        json={"model": MODEL, "items": [{"prompt": f"lot {i}"} for i in range(plan.items)]},
    )
    if created.status_code != 201:
        raise RuntimeError(f"batch refused: {created.status_code} {created.text[:300]}")
    job_id = created.json()["id"]
    counters = simulator.counters
    before = int(counters()["submissions_total"])
    busy_at = min(BUSY_AT, plan.items)
    while int(counters()["submissions_total"]) - before < busy_at:
        await asyncio.sleep(0.2)
    for n in range(REPEATS):
        submitted = int(counters()["submissions_total"]) - before
        job = (await bulk.get(f"/v1/jobs/{job_id}")).json()
        results.at_provider_when_timed.append(submitted - job["progress"]["completed"])
        results.batch_done_when_timed.append(job["progress"]["completed"])
        results.loaded.append(await _lone_request(lone, REPEATS + n))
    await bulk.post(f"/v1/jobs/{job_id}/cancel")


def render(r: Results) -> str:
    plan = r.plan
    idle = statistics.median(r.idle)
    loaded = statistics.median(r.loaded)
    ratio = loaded / idle if idle else float("nan")
    rows = [
        ["lone one-item request, idle server (median of 3)", seconds(idle), "—", "info"],
        [
            f"the same with the other client's {plan.items:,}-item batch running (median of 3)",
            seconds(loaded),
            f"≤ 2 × idle = {seconds(2 * idle)}",
            verdict(loaded <= 2 * idle),
        ],
        ["ratio loaded / idle", f"{ratio:.2f}", "≤ 2.00", verdict(ratio <= 2)],
        ["each run, idle", ", ".join(seconds(v) for v in r.idle), "—", "info"],
        ["each run, loaded", ", ".join(seconds(v) for v in r.loaded), "—", "info"],
        [
            "batch items at the provider / finished, at each loaded run",
            ", ".join(
                f"{a:,} / {d:,}"
                for a, d in zip(r.at_provider_when_timed, r.batch_done_when_timed, strict=True)
            ),
            "—",
            "info",
        ],
    ]
    head = (
        f"One `conveyor worker` process (concurrency {r.concurrency:,}, fair reserve "
        f"{r.fair_reserve:g}), {plan.database}; the simulator's gen-api `{MODEL}` for both "
        f"clients, uniform({plan.latency[0]:g}, {plan.latency[1]:g}) s per generation; the "
        f"loaded runs start once {min(BUSY_AT, plan.items):,} of the batch's items were "
        "submitted. Load average before / after: "
        f"{', '.join(f'{v:.2f}' for v in r.load_before)} / "
        f"{', '.join(f'{v:.2f}' for v in r.load_after)} (2 shared cores)."
    )
    return head + "\n\n" + table(["measure", "value", "target", "verdict"], rows)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; print and return its markdown section."""
    parser = argparse.ArgumentParser(prog="bench.fairness", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=None, help="the batch's items (5000)")
    parser.add_argument("--latency-min", type=float, default=2.0)
    parser.add_argument("--latency-max", type=float, default=4.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="a 1,000-item batch")
    args = parser.parse_args(argv)
    plan = Plan(
        items=args.items or (1000 if args.quick else 5000),
        latency=(args.latency_min, args.latency_max),
        database=args.database,
    )
    return measure(run(plan), render)


if __name__ == "__main__":
    main()
