"""Helpers for running the shipped provider specs against the simulator over real HTTP.

``LinkedClock`` is the adapters' clock *and* moves the simulator's ``ManualClock``: when an
adapter sleeps 3 s between polls, simulated tasks progress 3 s, and nothing waits for real
time. Results are stored by the production ``ItemFiles`` (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from conveyor.providers.base import ProviderState
from conveyor.sim import ManualClock

# A loopback address for the simulator alone: the fetch policy allows it and no other.
SIM_HOST = "127.0.0.3"


class LinkedClock:
    """Provider clock driving the simulator's virtual time."""

    def __init__(self, sim_clock: ManualClock) -> None:
        self.sim_clock = sim_clock
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.sim_clock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(1_700_000_000 + self.sim_clock(), UTC)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sim_clock.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class Checkpoints:
    def __init__(self, *, fail: bool = False) -> None:
        self.states: list[ProviderState] = []
        self.fail = fail

    async def __call__(self, state: ProviderState) -> None:
        self.states.append(state)
        if self.fail:
            # The worker dies right after committing: the step must resume, not resubmit.
            raise ConnectionAbortedError("worker died after the checkpoint")
