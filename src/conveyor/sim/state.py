"""Everything one simulator run remembers: tasks, files, counters, the RNG.

A task never runs anything. Its fate is drawn at submission (latency and whether it fails)
and its status is *computed* from the injected clock (``conveyor.core.clock.Clock``, its
``monotonic()``) each time someone looks, so a test that advances a ``ManualClock`` sees
tasks finish with no background work and no sleeping.
Counters record what clients did (submissions, polls, downloads, cancels, wrong endpoints)
and what the simulator did to them (429s, 5xx, hangs, 404s), so a test can assert that
Conveyor polled sanely, never resubmitted, and fetched results promptly. The only work that
runs in the background is a callback: a task submitted with a callback URL is delivered to
it when the clock reaches the task's end (``conveyor.sim.callbacks``), and every delivery
is kept in ``deliveries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import string
import uuid
from collections import Counter, defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from conveyor.core.clock import Clock
from conveyor.sim.config import Behaviour, SimConfig
from conveyor.sim.media import MediaSpec

# A task spends the first 30% of its latency queued, the rest running.
_QUEUED_SHARE = 0.3


class Phase(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED)


@dataclass(slots=True)
class SimTask:
    """One submitted task; its status is a function of the clock."""

    id: str
    protocol: str
    model: str
    inputs: dict[str, Any]
    submitted_at: float
    submitted_wall: float
    latency: float
    fails: bool
    failure_message: str
    file_ids: list[str]
    idempotency_key: str | None = None
    cancelled_at: float | None = None
    polls: int = 0
    first_poll_after_done_at: float | None = None
    first_download_at: float | None = None
    # Protocol-specific facts to echo back (Replicate version, fal app path, Kie callback).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ready_at(self) -> float:
        return self.submitted_at + self.latency

    def progress(self, now: float) -> float:
        if self.latency <= 0:
            return 1.0
        return min(1.0, max(0.0, (now - self.submitted_at) / self.latency))

    def phase(self, now: float) -> Phase:
        if self.cancelled_at is not None:
            return Phase.CANCELED
        if now >= self.ready_at:
            return Phase.FAILED if self.fails else Phase.SUCCEEDED
        return Phase.QUEUED if self.progress(now) < _QUEUED_SHARE else Phase.RUNNING

    def done_at(self, now: float) -> float | None:
        """When the task reached its end (clock time), or None if it has not yet."""
        if self.cancelled_at is not None:
            return self.cancelled_at
        return self.ready_at if now >= self.ready_at else None

    def wall_time(self, clock_time: float) -> float:
        """A clock reading as Unix time, for the timestamps providers put in answers."""
        return self.submitted_wall + (clock_time - self.submitted_at)


@dataclass(slots=True)
class Delivery:
    """One callback the simulator sent: what, where, and what the receiver answered."""

    task_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    answer: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "url": self.url,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "status": self.status,
            "answer": self.answer,
            "error": self.error,
        }


@dataclass(slots=True)
class Counters:
    """What happened during the run; ``snapshot`` is the JSON at ``GET /_sim/counters``."""

    requests: Counter[str] = field(default_factory=Counter)
    submissions: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    idempotency_keys: Counter[str] = field(default_factory=Counter)
    polls: Counter[str] = field(default_factory=Counter)
    downloads: Counter[str] = field(default_factory=Counter)
    cancels: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)
    not_found_polls: Counter[str] = field(default_factory=Counter)
    auth_failures: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    wrong_endpoints: Counter[str] = field(default_factory=Counter)


class SimState:
    """The mutable heart of one simulator app (single event loop, so no locks)."""

    def __init__(self, config: SimConfig, *, clock: Clock) -> None:
        self.initial_config = config
        self.config = config
        self.clock = clock
        self._start_run()

    def _start_run(self) -> None:
        self.rng = random.Random(self.config.seed)
        self.tasks: dict[str, SimTask] = {}
        self.files: dict[str, tuple[str, MediaSpec]] = {}
        self.counters = Counters()
        self._admitted: Counter[str] = Counter()
        self._next_number = 10_000 + self.rng.randrange(90_000)
        self._hang_release = asyncio.Event()
        self.deliveries: list[Delivery] = []
        self._sending: set[asyncio.Task[None]] = set()

    def reset(self, config: SimConfig | None = None) -> None:
        """Forget every task and counter; back to ``config`` or the starting config."""
        self.release_hangs()
        self.stop_deliveries()
        self.config = config or self.initial_config
        self._start_run()

    def now(self) -> float:
        """The clock's monotonic reading: task times are measured on it."""
        return self.clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait simulated time (a synchronous call's latency, ``Prefer: wait``)."""
        await self.clock.sleep(seconds)

    def behaviour(self, protocol: str, model: str | None = None) -> Behaviour:
        return self.config.behaviour_for(protocol, model)

    # Identifiers, drawn from the seeded RNG so a run is reproducible.

    def numeric_id(self) -> str:
        self._next_number += 1
        return str(self._next_number)

    def token(self, length: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def chance(self, rate: float) -> bool:
        # Draw only when the knob is on, so enabling one fault leaves other draws unchanged.
        return rate > 0 and self.rng.random() < rate

    # Tasks

    def submit(
        self,
        protocol: str,
        model: str,
        inputs: dict[str, Any],
        *,
        task_id: str,
        outputs: list[MediaSpec],
        idempotency_key: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> SimTask:
        behaviour = self.behaviour(protocol, model)
        latency = self.rng.uniform(behaviour.latency_min, behaviour.latency_max)
        task = SimTask(
            id=task_id,
            protocol=protocol,
            model=model,
            inputs=inputs,
            submitted_at=self.now(),
            submitted_wall=self.clock.timestamp(),
            latency=latency * behaviour.latency_scale,
            fails=self.chance(behaviour.failure_rate),
            failure_message=behaviour.failure_message,
            file_ids=self.register_files(task_id, outputs),
            idempotency_key=idempotency_key,
            extra=extra or {},
        )
        self.tasks[task_id] = task
        self.record_call(protocol, model, idempotency_key)
        return task

    def record_call(self, protocol: str, model: str, idempotency_key: str | None) -> None:
        """Count one submission (an async task or a synchronous call) and its key."""
        self.counters.submissions[protocol][model] += 1
        if idempotency_key:
            self.counters.idempotency_keys[idempotency_key] += 1

    def register_files(self, owner_id: str, outputs: list[MediaSpec]) -> list[str]:
        """Make outputs downloadable under ``/files``; returns their file ids."""
        file_ids = []
        for index, spec in enumerate(outputs):
            file_id = f"{owner_id}-{index}.{spec.extension}"
            self.files[file_id] = (owner_id, spec)
            file_ids.append(file_id)
        return file_ids

    def find(self, protocol: str, task_id: str) -> SimTask | None:
        task = self.tasks.get(task_id)
        return task if task is not None and task.protocol == protocol else None

    def phase(self, task: SimTask) -> Phase:
        return task.phase(self.now())

    def observe_poll(self, task: SimTask) -> int:
        """Count a status read of ``task``; returns how many there have been, this one included."""
        task.polls += 1
        self.counters.polls[task.id] += 1
        self.mark_seen(task)
        return task.polls

    def mark_seen(self, task: SimTask) -> None:
        """Note that a client was just shown ``task``: the first time it is done, stamp it."""
        now = self.now()
        if task.first_poll_after_done_at is None and task.phase(now).terminal:
            task.first_poll_after_done_at = now

    def cancel(self, task: SimTask) -> bool:
        """Ask to cancel; True if the task was still running and is now canceled."""
        self.counters.cancels[task.id] += 1
        if self.phase(task).terminal:
            return False
        task.cancelled_at = self.now()
        return True

    # Files

    def file(self, file_id: str) -> MediaSpec | None:
        entry = self.files.get(file_id)
        return entry[1] if entry else None

    def record_download(self, file_id: str) -> None:
        self.counters.downloads[file_id] += 1
        entry = self.files.get(file_id)
        task = self.tasks.get(entry[0]) if entry else None
        if task is not None and task.first_download_at is None:
            task.first_download_at = self.now()

    # Callbacks

    def start_delivery(self, delivery: Coroutine[Any, Any, None], task_id: str) -> None:
        """Run a callback delivery in the background (kept until done, or reset)."""
        sending = asyncio.get_running_loop().create_task(delivery, name=f"sim-callback-{task_id}")
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)

    def stop_deliveries(self) -> None:
        for sending in list(self._sending):
            sending.cancel()
        self._sending.clear()

    # Faults

    def take_rate_limit_slot(self, protocol: str, behaviour: Behaviour) -> bool:
        """True if this request falls in a 429 burst (a fixed every/burst pattern)."""
        if behaviour.rate_limit_every == 0:
            return False
        position = self._admitted[protocol] % (
            behaviour.rate_limit_every + behaviour.rate_limit_burst
        )
        self._admitted[protocol] += 1
        return position >= behaviour.rate_limit_every

    async def hang(self, seconds: float) -> None:
        """Hold a request for ``seconds`` of real time, or until reset/shutdown releases it."""
        release = self._hang_release
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), timeout=seconds)

    def release_hangs(self) -> None:
        self._hang_release.set()
        self._hang_release = asyncio.Event()

    # Reporting

    def snapshot(self, *, include_tasks: bool = True) -> dict[str, Any]:
        """The counters and (unless left out) per-task timings as JSON-ready data."""
        now = self.now()
        counters = self.counters
        tasks: dict[str, Any] = {}
        for task in self.tasks.values() if include_tasks else ():
            done_at = task.done_at(now)
            seen = task.first_poll_after_done_at
            downloaded = task.first_download_at
            tasks[task.id] = {
                "protocol": task.protocol,
                "model": task.model,
                "status": task.phase(now).value,
                "submitted_at": task.submitted_at,
                "done_at": done_at,
                "first_poll_after_done_at": seen,
                "first_download_at": downloaded,
                "done_to_poll_lag": None if done_at is None or seen is None else seen - done_at,
                "done_to_download_lag": (
                    None if done_at is None or downloaded is None else downloaded - done_at
                ),
                "polls": task.polls,
                "idempotency_key": task.idempotency_key,
            }
        return {
            "now": now,
            "requests": dict(counters.requests),
            "submissions": {name: dict(models) for name, models in counters.submissions.items()},
            "submissions_total": sum(sum(m.values()) for m in counters.submissions.values()),
            "idempotency_keys": dict(counters.idempotency_keys),
            "polls": dict(counters.polls),
            "downloads": dict(counters.downloads),
            "cancels": dict(counters.cancels),
            "rate_limited": dict(counters.rate_limited),
            "server_errors": dict(counters.server_errors),
            "timeouts": dict(counters.timeouts),
            "not_found_polls": dict(counters.not_found_polls),
            "auth_failures": {
                name: dict(statuses) for name, statuses in counters.auth_failures.items()
            },
            "wrong_endpoints": dict(counters.wrong_endpoints),
            "wrong_endpoints_total": sum(counters.wrong_endpoints.values()),
            "tasks": tasks,
        }


SIM_STATE: web.AppKey[SimState] = web.AppKey("conveyor_sim_state", SimState)
