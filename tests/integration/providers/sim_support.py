"""Helpers for running the shipped provider specs against the simulator over real HTTP.

The adapters and the simulator share one ``ManualClock`` whose sleeps move it: when an
adapter sleeps 3 s between polls, simulated tasks progress 3 s, and nothing waits for real
time. Results are stored by the production ``ItemFiles`` (see ``conftest.py``).
"""

from __future__ import annotations

from conveyor.providers.base import ProviderState

# A loopback address for the simulator alone: the fetch policy allows it and no other.
SIM_HOST = "127.0.0.3"


class Checkpoints:
    def __init__(self, *, fail: bool = False) -> None:
        self.states: list[ProviderState] = []
        self.fail = fail

    async def __call__(self, state: ProviderState) -> None:
        self.states.append(state)
        if self.fail:
            # The worker dies right after committing: the step must resume, not resubmit.
            raise ConnectionAbortedError("worker died after the checkpoint")
