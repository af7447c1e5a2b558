"""The figures of ``bench peer`` from what the provider and each side recorded, as markdown.

Every time is read on one clock: the simulator's (``time.monotonic`` of the benchmark
process) for submissions, polls, completions and downloads; wall time for "stored" (a
database timestamp or a file's mtime), turned into the simulator's clock with the offset
taken when the provider's log was read.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench._peer_profile import Profile, Share
from bench._peer_profiled_worker import FRAMES
from bench._peer_watch import SideRun
from bench._stats import percentile, seconds, table, verdict

if TYPE_CHECKING:
    from bench.peer import Results

# Issue 8's targets for Conveyor against the peer, on a 2-core machine.
TARGET_SUBMIT_FACTOR = 3.0
TARGET_SUBMIT_RATE = 600.0  # submissions/s
TARGET_PER_WAITING = 8 * 1024  # bytes of RSS per waiting generation
TARGET_IDLE_RSS = 80 * 2**20
TARGET_POLL_FACTOR = 1.1  # poll p99 ≤ 1.1 × the interval
TARGET_STORED_SLACK = 0.5  # done → stored p99 ≤ interval + 0.5 s
TARGET_CAPACITY = 10_000
TARGET_CAPACITY_RSS = 160 * 2**20
TARGET_RATE = 500.0  # items/s end to end, instant provider


@dataclass(frozen=True, slots=True)
class Figures:
    side: str
    generations: int
    poll_intervals: list[float]
    done_to_download: list[float]
    done_to_stored: list[float]
    submit_span: float  # first submit → last submit
    enqueue_to_submitted: float  # enqueue → last submit
    submitted_generations: int
    tasks: int
    most_submissions: int
    idle_rss: int
    peak_rss: int
    per_waiting: float  # bytes
    waiting_count: int
    wall: float
    stored: int
    unfinished: bool
    worker_cpu: float
    bench_cpu: float
    enqueue_seconds: float

    @property
    def submit_rate(self) -> float:
        span = self.enqueue_to_submitted
        return self.generations / span if span > 0 else math.nan


def figures(run: SideRun) -> Figures:
    log = run.provider
    assert log is not None
    ours = [t for t in log.tasks if t.generation is not None]
    poll_intervals = [b - a for t in ours for a, b in itertools.pairwise(t.polls)]
    done_to_download = [
        t.downloaded_at - t.done_at
        for t in ours
        if t.done_at is not None and t.downloaded_at is not None
    ]
    done_to_stored = [
        run.stored_wall[t.task_id] - (t.done_at + log.wall_offset)
        for t in ours
        if t.done_at is not None and t.task_id in run.stored_wall
    ]
    submitted = [t.submitted_at for t in ours]
    per_generation = log.submissions_per_generation()
    enqueued_wall = run.enqueue_started + log.wall_offset
    if run.stored_wall and not run.unfinished:
        wall = max(run.stored_wall.values()) - enqueued_wall
    else:
        wall = run.seconds
    waiting = max(run.waiting_count, 1)
    return Figures(
        side=run.side,
        generations=run.generations,
        poll_intervals=poll_intervals,
        done_to_download=done_to_download,
        done_to_stored=done_to_stored,
        submit_span=max(submitted) - min(submitted) if submitted else math.nan,
        enqueue_to_submitted=max(submitted) - run.enqueue_started if submitted else math.nan,
        submitted_generations=len(per_generation),
        tasks=len(ours),
        most_submissions=max(per_generation.values(), default=0),
        idle_rss=run.idle_rss,
        peak_rss=run.peak_rss,
        per_waiting=(run.waiting_rss - run.idle_rss) / waiting,
        waiting_count=run.waiting_count,
        wall=wall,
        stored=len(run.stored_wall),
        unfinished=run.unfinished,
        worker_cpu=run.worker_cpu,
        bench_cpu=run.bench_cpu,
        enqueue_seconds=run.enqueue_seconds,
    )


# -- cells ---------------------------------------------------------------------------------


def _pair(values: Sequence[float]) -> str:
    if not values:
        return "—"
    return f"{percentile(values, 50):.2f} / {percentile(values, 99):.2f} s"


def _p99(values: Sequence[float]) -> float:
    return percentile(values, 99) if values else math.nan


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def _kib(value: float) -> str:
    return f"{value / 1024:.1f} KiB"


def _ok(value: float, limit: float) -> bool | None:
    return None if math.isnan(value) else value <= limit


def _submitted(f: Figures) -> str:
    rate = f.submit_rate
    return f"{seconds(f.enqueue_to_submitted, 1)} ({rate:.0f}/s)"


def _submissions(f: Figures) -> str:
    missing = f.generations - f.submitted_generations
    text = f"{f.tasks / max(f.submitted_generations, 1):.2f} (max {f.most_submissions})"
    return text + (f", {missing:,} never submitted" if missing else "")


def _wall(f: Figures) -> str:
    text = seconds(f.wall, 1)
    return (
        f"{text} (**unfinished**: {f.stored:,}/{f.generations:,} stored)" if f.unfinished else text
    )


Cell = Callable[[Figures], str]
Judge = Callable[[Figures], bool | None]


def comparison_rows(poll: float, peer: Figures | None, ours: Figures | None) -> list[list[str]]:
    poll_limit = TARGET_POLL_FACTOR * poll
    stored_limit = poll + TARGET_STORED_SLACK
    rows: list[list[str]] = []

    def row(measure: str, cell: Cell, target: str = "—", judge: Judge | None = None) -> None:
        cells = [cell(f) if f is not None else "—" for f in (peer, ours)]
        judged = "info"
        if judge is not None:
            judged = verdict(judge(ours) if ours is not None else None)
        rows.append([measure, *cells, target, judged])

    def submit_fast(f: Figures) -> bool | None:
        if math.isnan(f.submit_rate):
            return None
        fast = f.submit_rate >= TARGET_SUBMIT_RATE
        if peer is not None and not math.isnan(peer.submit_rate):
            fast = fast and f.submit_rate >= TARGET_SUBMIT_FACTOR * peer.submit_rate
        return fast

    row(
        f"effective poll interval p50 / p99 (configured {poll:g} s)",
        lambda f: _pair(f.poll_intervals),
        f"p99 ≤ {poll_limit:.2f} s",
        lambda f: _ok(_p99(f.poll_intervals), poll_limit),
    )
    row("provider done → result downloaded p50 / p99", lambda f: _pair(f.done_to_download))
    row(
        "provider done → result stored p50 / p99 (item committed / file written)",
        lambda f: _pair(f.done_to_stored),
        f"p99 ≤ {stored_limit:g} s",
        lambda f: _ok(_p99(f.done_to_stored), stored_limit),
    )
    row("time until all were submitted, from the first submit", lambda f: seconds(f.submit_span, 1))
    row(
        "time until all were submitted, from enqueue (rate)",
        _submitted,
        f"≥ {TARGET_SUBMIT_RATE:.0f}/s and ≥ {TARGET_SUBMIT_FACTOR:g}× the peer's",
        submit_fast,
    )
    row(
        "worker RSS idle → peak",
        lambda f: f"{_mib(f.idle_rss)} → {_mib(f.peak_rss)}",
        f"idle ≤ {_mib(TARGET_IDLE_RSS)}",
        lambda f: f.idle_rss <= TARGET_IDLE_RSS,
    )
    row(
        "RSS per waiting generation ((RSS all waiting − idle) / waiting)",
        lambda f: f"{_kib(f.per_waiting)} ({f.waiting_count:,} waiting)",
        f"≤ {_kib(TARGET_PER_WAITING)}",
        lambda f: f.per_waiting <= TARGET_PER_WAITING,
    )
    row(
        "submissions per generation (mean, max)",
        _submissions,
        "1.00 (max 1)",
        lambda f: f.most_submissions == 1 and f.submitted_generations == f.generations,
    )
    row("wall time, enqueue → last result stored", _wall)
    row(
        "worker CPU (process and children)",
        lambda f: f"{f.worker_cpu:.1f} s ({1000 * f.worker_cpu / f.generations:.1f} ms/gen.)",
    )
    row("enqueue call (send loop / `POST /v1/jobs`)", lambda f: seconds(f.enqueue_seconds, 2))
    row(
        "benchmark process CPU (simulator; + API for Conveyor)",
        lambda f: f"{f.bench_cpu:.1f} s",
    )
    return rows


def extra_rows(results: Results) -> list[list[str]]:
    rows: list[list[str]] = []
    capacity = results.capacity
    if capacity is not None:
        # A run smaller than the target is not judged; one that never got them all waiting
        # within its ramp time misses, whatever its RSS.
        judged: bool | None = None
        if capacity.items >= TARGET_CAPACITY:
            judged = (
                capacity.peak_in_flight >= TARGET_CAPACITY
                and capacity.rss_at_peak <= TARGET_CAPACITY_RSS
            )
        rows.append(
            [
                f"{capacity.items:,} waiting in one Conveyor worker: RSS",
                f"≤ {_mib(TARGET_CAPACITY_RSS)} with {TARGET_CAPACITY:,}",
                f"{_mib(capacity.rss_at_peak)} with {capacity.peak_in_flight:,} waiting "
                f"(idle {_mib(capacity.idle_rss)}, max {_mib(capacity.max_rss)}, "
                f"ramp {seconds(capacity.ramp_seconds, 0)})",
                verdict(judged),
            ]
        )
    for run in results.throughput:
        rows.append(
            [
                f"end to end, instant provider, {run.backend}",
                f"≥ {TARGET_RATE:.0f} items/s",
                f"{run.rate:.0f} items/s ({run.completed:,} in {run.seconds:.1f} s, "
                f"worker CPU {1000 * run.worker_cpu / max(run.completed, 1):.1f} ms/item)",
                verdict(run.rate >= TARGET_RATE and run.failed == 0),
            ]
        )
    return rows


# -- the section ---------------------------------------------------------------------------


def render(results: Results) -> str:
    plan = results.plan
    peer = figures(results.celery) if results.celery is not None else None
    ours = figures(results.conveyor) if results.conveyor is not None else None
    low, high = plan.latency
    before = ", ".join(f"{x:.2f}" for x in results.load_before)
    after = ", ".join(f"{x:.2f}" for x in results.load_after)
    parts = [
        f"Mode **{'quick' if plan.quick else 'full'}**. Fake provider: the simulator's gen-api "
        f"`z-image`, {plan.generations:,} generations of uniform({low:g}, {high:g}) s, "
        f"64 px PNG results, polled every {plan.poll:g} s. **Peer**: Celery 5.7 + Redis "
        f"(broker and result backend), one `celery worker -P gevent -c {plan.pool}` process, "
        f"a task that submits, polls with `self.retry(countdown={plan.poll:g})` and writes the "
        "result to a file (`bench/_peer_celery.py`; Redis `max_connections` at the pool size "
        "and `result_backend_thread_safe`, without which it loses acks and leaks a connection "
        "per retry). **Conveyor**: one `conveyor worker` "
        f"process, the API in the benchmark process, one job of {plan.generations:,} items "
        f"of the `model` recipe on {plan.backend}, the gen-api spec polling every "
        f"{plan.poll:g} s (shipped ±10 % jitter) with its request limits raised to the HTTP "
        "pool. The sides run one after the other; the provider (in the benchmark process) "
        f"records every request. Load average before / after: {before} / {after} "
        "(2 shared cores).",
        "",
        table(
            ["measure", "Celery (peer)", "Conveyor", "target (Conveyor)", "verdict"],
            comparison_rows(plan.poll, peer, ours),
        ),
    ]
    extras = extra_rows(results)
    if extras:
        parts += ["", "**Issue 8's other targets** (Conveyor alone, `bench/_scenarios.py`)", ""]
        parts.append(table(["measure", "target", "measured", "verdict"], extras))
        if results.capacity is not None:
            parts += [
                "",
                f"The capacity run submits {results.capacity.items:,} provider tasks that "
                "never finish during the run, polled with the shipped spec (1 s, backing off "
                "to 3 s), for at most the ramp time shown; RSS is read at the peak number in "
                "flight. The end-to-end runs use a provider that answers at once; one job, "
                "one worker process.",
            ]
    notes = [note for run in (results.celery, results.conveyor) if run for note in run.notes]
    notes.append(
        "Conveyor's poll pause is the interval × uniform(0.9, 1.1) (the shipped jitter), so "
        f"its p99 alone is {0.9 + 0.2 * 0.99:.3f}× the interval: the 1.1× target leaves "
        f"{1000 * (TARGET_POLL_FACTOR - 1.098) * plan.poll:.0f} ms for everything else."
    )
    if plan.quick:
        notes.append(
            f"quick mode: {plan.generations:,} generations and a {results.plan.capacity:,}-"
            "generation capacity run; the 10,000-waiting target is not judged (n/a)."
        )
    if notes:
        parts += ["", *[f"- {note}" for note in notes]]
    if results.skipped:
        parts += ["", "Skipped or failed: " + "; ".join(results.skipped)]
    if results.profile is not None:
        parts += ["", *render_profile(results.profile)]
    return "\n".join(parts)


def _share_table(title: str, shares: Sequence[Share]) -> str:
    return table([title, "share of samples"], [[f"`{s.what}`", _percent(s.share)] for s in shares])


def _percent(share: float) -> str:
    return f"{100 * share:.1f} %"


def render_profile(p: Profile) -> list[str]:
    out = [
        f"**Profile of Conveyor's worker** ({p.generations:,} generations, {p.backend}; one "
        "more run per profiler, with a provider that takes longer than the run so every "
        "generation stays waiting, stopped once all were submitted; the figures above are "
        "not slowed by it).",
        "",
    ]
    if p.cpu_skipped:
        out += [f"CPU: skipped, {p.cpu_skipped}.", ""]
    else:
        threads = ", ".join(f"{name} {cpu:.1f} s" for name, cpu in p.thread_cpu.items())
        packages = "; ".join(f"`{s.what}` {_percent(s.share)}" for s in p.packages)
        out += [
            f"CPU from job creation to the last submission ({p.submitted:,} submitted in "
            f"{seconds(p.burst_seconds, 1)}): worker CPU {p.worker_cpu:.1f} s, {threads} "
            f"(psutil). The main thread as py-spy sampled it ({p.samples:,} samples at "
            "100 Hz; `Runner.run` running means uvloop's own C code), by the package of the "
            f"running line: {packages}.",
            "",
            _share_table("running function (self)", p.leaves),
            "",
            _share_table("Conveyor function on the stack (inclusive)", p.inclusive),
            "",
        ]
    per = max(p.waiting, 1)
    out += [
        f"Memory with {p.waiting:,} generations waiting (tracemalloc, {FRAMES} frames): worker "
        f"RSS {_mib(p.rss_idle)} idle → {_mib(p.rss_waiting)} under tracing; traced Python "
        f"allocations grew {_mib(p.traced_growth)}, {_kib(p.traced_growth / per)} per waiting "
        "generation. By allocation site:",
        "",
        table(
            ["allocated at", "reached from (nearest Conveyor frame)", "per waiting", "total"],
            [
                [
                    f"`{h.site}`",
                    f"`{h.via}`" if h.via else "",
                    _kib(h.bytes_per_waiter),
                    _kib(h.total),
                ]
                for h in p.holders
            ],
        ),
        "",
        "By file: " + "; ".join(f"`{name}` {_kib(size)}" for name, size in p.by_file) + ".",
    ]
    return out
