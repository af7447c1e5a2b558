"""Vehicle-damage batch benchmark: seed 000's API with a big batch against the simulator.

One batch of ``--lots`` lots (default 1,000) × ``--images`` photos × ``--languages`` goes
through ``POST /api/v1/generate-descriptions`` exactly as the seed's client sends it (signed
``lots``), then ``batch-status`` is polled until the job is finished. The provider is the
simulator's OpenAI-compatible chat, every call taking uniform(``--latency-min``,
``--latency-max``) seconds (2–8 s by default); the photos come from a local image server.
The API (uvicorn, no workers) and the simulator run in this process; the work runs in one
``conveyor worker`` process (``bench._stack.WorkerProcess``) whose RSS is sampled every 0.25 s. The
OpenAI spec's own request limits apply unchanged (in flight and requests per second), so
the time to finish is compared with the bound those limits set.

Measured: time to accept the batch, time to each status and to the end, provider calls made
(simulator counters, by step), photos fetched, and peak RSS of the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import resource
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from PIL import Image
from pydantic import SecretStr

from bench._stack import WorkerProcess, bench_settings, fresh_database, measure, serving_api
from bench._stats import mib, seconds, table
from conveyor.compat.descriptions.signing import sign_lots
from conveyor.providers.http import read_specs
from conveyor.sim import SimConfig, start_simulator

CLIENT = "bench"
SHARED_KEY = "bench-descriptions-shared-key"
VISION_MODEL = "gpt-4o-mini"
TRANSLATE_MODEL = "gpt-4.1-mini"  # a name of its own, so the counters split by step


@dataclass(frozen=True, slots=True)
class Plan:
    lots: int
    images: int
    languages: tuple[str, ...]
    latency: tuple[float, float]
    database: str
    quick: bool


@dataclass
class Results:
    plan: Plan
    accept_seconds: float = 0.0
    creation_time: str = ""
    request_bytes: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    finish_seconds: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    sim_errors: dict[str, Any] = field(default_factory=dict)
    photos_fetched: int = 0
    worker_peak_rss: int = 0
    worker_cpu: float = 0.0
    bench_peak_rss: int = 0
    limits: tuple[int, float | None] = (0, None)
    fallbacks: int = 0


class PhotoServer:
    """Small real PNGs, a different colour per URL; counts what was fetched."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> PhotoServer:
        app = web.Application()
        app.router.add_get("/photos/{name}", self._photo)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def _photo(self, request: web.Request) -> web.Response:
        self.hits["photo"] += 1
        shade = sum(request.match_info["name"].encode()) % 256
        buffer = io.BytesIO()
        Image.new("RGB", (320, 240), (shade, 90, 255 - shade)).save(buffer, "PNG")
        return web.Response(body=buffer.getvalue(), content_type="image/png")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def build_lots(plan: Plan, photos: str) -> list[dict[str, Any]]:
    return [
        {
            "lot_id": f"lot-{n:05d}",
            "additional_info": f"{2015 + n % 10} sedan, fleet unit {n}, rear bumper scratched",
            "images": [{"url": f"{photos}/photos/{n}-{k}.png"} for k in range(plan.images)],
        }
        for n in range(plan.lots)
    ]


async def run(plan: Plan) -> Results:
    results = Results(plan)
    openai = next(spec for spec in read_specs() if spec.name == "openai")
    results.limits = (openai.limits.max_in_flight, openai.limits.requests_per_second)
    config = SimConfig(latency_min=plan.latency[0], latency_max=plan.latency[1])
    with tempfile.TemporaryDirectory(prefix="bench-descriptions-") as workdir:
        work = Path(workdir)
        simulator = await start_simulator(config)
        photos = await PhotoServer().start()
        try:
            async with fresh_database(plan.database, work) as backend:
                # The photo server is on loopback; the worker fetches, the API only checks.
                settings = bench_settings(
                    backend, work / "data", simulator.base_url, allow_private_urls=True
                )
                worker = WorkerProcess(
                    settings,
                    work / "worker.log",
                    {
                        "CONVEYOR_OPENAI_TRANSLATE_MODEL": TRANSLATE_MODEL,
                        "CONVEYOR_OPENAI_VISION_MODEL": VISION_MODEL,
                    },
                )
                api_settings = settings.model_copy(
                    update={"descriptions_clients": {CLIENT: SecretStr(SHARED_KEY)}}
                )
                async with worker, serving_api(api_settings) as (base_url, _app):
                    await _batch(plan, results, base_url, photos, worker)
            counters = simulator.counters()
            results.calls = dict(counters["submissions"].get("openai", {}))
            results.sim_errors = {
                "rate_limited": counters["rate_limited"],
                "server_errors": counters["server_errors"],
            }
            results.photos_fetched = photos.hits["photo"]
        finally:
            await photos.close()
            await simulator.close()
    results.bench_peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return results


async def _batch(
    plan: Plan, results: Results, base_url: str, photos: PhotoServer, worker: WorkerProcess
) -> None:
    lots = build_lots(plan, photos.base_url)
    payload = {
        "signature": sign_lots(lots, SHARED_KEY),
        "version": "1.0.0",
        "languages": list(plan.languages),
        "lots": lots,
    }
    body = json.dumps(payload).encode()  # as ``requests.post(json=...)`` sends it
    results.request_bytes = len(body)
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
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as http:
        started = time.perf_counter()
        response = await http.post(
            "/api/v1/generate-descriptions",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        results.accept_seconds = time.perf_counter() - started
        if response.status_code != 201:
            raise RuntimeError(f"batch refused: {response.status_code} {response.text[:500]}")
        accepted = response.json()
        results.creation_time = accepted["creation_time"]
        job_id = accepted["job_id"]
        while True:
            status = (await http.get(f"/api/v1/batch-status/{job_id}")).json()
            elapsed = time.perf_counter() - started
            results.stages.setdefault(status["status"], elapsed)
            if status["status"] in ("completed", "failed", "cancelled"):
                results.finish_seconds = elapsed
                results.final = status
                break
            await asyncio.sleep(0.5)
        done = (await http.get(f"/api/v1/batch-results/{job_id}")).json()
        results.fallbacks = sum(1 for entry in done["results"]["lots"] if entry.get("warnings"))
    stop.set()
    await sampler
    results.worker_peak_rss = peak
    results.worker_cpu = worker.cpu_seconds()


def render(r: Results) -> str:
    plan = r.plan
    languages = len(plan.languages)
    translations = plan.lots * sum(1 for code in plan.languages if code != "en")
    described = plan.lots
    calls_expected = described + translations
    calls_made = sum(r.calls.values())
    in_flight, rps = r.limits
    mean_latency = statistics.fmean(plan.latency)
    rate_bound = min(rps or float("inf"), in_flight / mean_latency) if mean_latency else rps
    # Each lot makes two calls one after the other (describe, then translate), so even an
    # unlimited provider needs about two latencies; beyond that the spec's limits decide.
    bound = max(calls_expected / rate_bound if rate_bound else 0.0, 2 * mean_latency)
    progress = r.final.get("progress", {})
    rows = [
        ["time to accept (POST → 201, client side)", seconds(r.accept_seconds)],
        ["`creation_time` in the 201 answer", r.creation_time],
        ["request body", f"{r.request_bytes / 1024:.0f} KiB"],
        *[
            [f"time to status `{name}`", seconds(at)]
            for name, at in r.stages.items()
            if name not in ("completed", "failed", "cancelled")
        ],
        [f"time to finish (`{r.final.get('status')}`)", seconds(r.finish_seconds)],
        [
            "lots described / failed",
            f"{progress.get('processed_lots', 0) - progress.get('failed_lots', 0):,} / "
            f"{progress.get('failed_lots', 0):,}",
        ],
        [
            "provider calls (vision + translation)",
            f"{calls_made:,} ({r.calls.get(VISION_MODEL, 0):,} + "
            f"{r.calls.get(TRANSLATE_MODEL, 0):,}); minimum {calls_expected:,}",
        ],
        [
            "simulator 429s / 5xx",
            f"{_total(r.sim_errors['rate_limited'])} / {_total(r.sim_errors['server_errors'])}",
        ],
        ["photos fetched", f"{r.photos_fetched:,} (of {plan.lots * plan.images:,} URLs)"],
        ["lots with warnings", f"{r.fallbacks:,}"],
        ["worker peak RSS", mib(r.worker_peak_rss)],
        ["worker CPU time", seconds(r.worker_cpu, 1)],
        ["this process peak RSS (API + simulator + photos + client)", mib(r.bench_peak_rss)],
        [
            "lower bound from the OpenAI spec's limits",
            f"{seconds(bound, 0)}: {calls_expected:,} calls at min({rps:g} req/s, "
            f"{in_flight} in flight / {mean_latency:g} s mean latency), and ≥ 2 calls in a "
            "row per lot",
        ],
    ]
    return "\n".join(
        [
            f"Mode **{'quick' if plan.quick else 'full'}**: one batch of {plan.lots:,} lots × "
            f"{plan.images} photos × {languages} languages ({', '.join(plan.languages)}) "
            "through `POST /api/v1/generate-descriptions`, signed as seed 000's client signs "
            f"it; {plan.database}; simulator latency uniform({plan.latency[0]:g}, "
            f"{plan.latency[1]:g}) s per chat call; shipped `openai` request limits; one "
            "`conveyor worker` process with default settings; photos 320×240 PNG from a "
            "local server.",
            "",
            table(["measure", "value"], rows),
        ]
    )


def _total(value: Any) -> int:
    return sum(value.values()) if isinstance(value, dict) else int(value or 0)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; print and return its markdown section."""
    parser = argparse.ArgumentParser(prog="bench.descriptions", description=__doc__.splitlines()[0])
    parser.add_argument("--lots", type=int, default=None, help="lots in the batch (1000)")
    parser.add_argument("--images", type=int, default=3, help="photos per lot")
    parser.add_argument("--languages", default="en,ru,de", help="comma-separated codes")
    parser.add_argument("--latency-min", type=float, default=2.0)
    parser.add_argument("--latency-max", type=float, default=8.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="100 lots")
    args = parser.parse_args(argv)
    plan = Plan(
        lots=args.lots or (100 if args.quick else 1000),
        images=args.images,
        languages=tuple(code.strip() for code in args.languages.split(",") if code.strip()),
        latency=(args.latency_min, args.latency_max),
        database=args.database,
        quick=args.quick,
    )
    return measure(run(plan), render)


if __name__ == "__main__":
    main()
