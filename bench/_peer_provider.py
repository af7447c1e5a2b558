"""The one fake provider both sides of ``bench peer`` drive, and what it saw of each task.

It is Conveyor's simulator speaking gen-api over real HTTP (``bench._sim``): a submit
answers a request id at once, a poll answers a running status until the task's drawn
latency has passed, then ``success`` with a result URL; the result is a small PNG (64 px).
A fresh simulator with the same seed serves each side, so both meet the same latencies.

Per task it records, on the simulator's clock (``time.monotonic`` of this process): when it
was submitted, every poll (``DoorLog``), when it became done, and when its result was first
downloaded. The generation a task belongs to is read back from its prompt, so a generation
submitted twice shows up as two tasks of one generation.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bench._sim import DoorLog, fake_provider, start_recording_simulator
from conveyor.sim import RunningSimulator

_GENERATION = re.compile(r"^peer generation (\d+):")


def prompt(generation: int) -> str:
    """The prompt of one generation; ``generation_of`` reads the number back."""
    return f"peer generation {generation}: a product photo on a white table"


def generation_of(text: str) -> int | None:
    match = _GENERATION.match(text)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One provider task as the provider saw it (monotonic seconds; None: did not happen)."""

    task_id: str
    generation: int | None
    submitted_at: float
    polls: tuple[float, ...]
    done_at: float | None
    downloaded_at: float | None


@dataclass(frozen=True, slots=True)
class ProviderLog:
    """Every task of one run, and the offset that turns the simulator's clock into wall time."""

    tasks: tuple[TaskRecord, ...]
    wall_offset: float

    def submissions_per_generation(self) -> Counter[int]:
        return Counter(t.generation for t in self.tasks if t.generation is not None)


@contextlib.asynccontextmanager
async def fake_generation_provider(
    latency_min: float, latency_max: float
) -> AsyncIterator[tuple[RunningSimulator, DoorLog]]:
    """The simulator as the issue's fake provider, with its door log; closed afterwards."""
    sim, door = await start_recording_simulator(
        fake_provider(latency_min=latency_min, latency_max=latency_max, scale=1.0)
    )
    try:
        yield sim, door
    finally:
        await sim.close()


def provider_log(sim: RunningSimulator, door: DoorLog) -> ProviderLog:
    """What the provider saw of every task so far."""
    state = sim.state
    now = state.now()
    tasks = []
    for task in state.tasks.values():
        text = task.inputs.get("prompt")
        tasks.append(
            TaskRecord(
                task_id=task.id,
                generation=generation_of(text) if isinstance(text, str) else None,
                submitted_at=task.submitted_at,
                polls=tuple(door.polls.get(task.id, ())),
                done_at=task.done_at(now),
                downloaded_at=task.first_download_at,
            )
        )
    return ProviderLog(tuple(tasks), wall_offset=time.time() - time.monotonic())
