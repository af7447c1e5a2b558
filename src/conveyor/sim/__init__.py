"""A local stand-in for the AI providers Conveyor drives, for tests, demos and benchmarks.

One aiohttp app speaks five protocols, each under a prefix that stands for the provider's
origin (swap the origin, keep the path):

============  ==========================  ==========================================
protocol      simulator base              stands for
============  ==========================  ==========================================
genapi        ``{sim}/genapi``            ``https://api.gen-api.ru`` (API base ``/api/v1``)
kie           ``{sim}/kie``               ``https://api.kie.ai`` (``/api/v1/jobs/…``)
replicate     ``{sim}/replicate``         ``https://api.replicate.com`` (``/v1/…``)
fal           ``{sim}/fal``               ``https://queue.fal.run``
openai        ``{sim}/openai``            ``https://api.openai.com`` (base ``/openai/v1``)
============  ==========================  ==========================================

Generated files are served at ``{sim}/files/{file_id}``; the control API is under
``{sim}/_sim`` (``config``, ``reset``, ``counters``, ``callbacks``). Tasks finish by the
injected clock (``conveyor.core.clock.Clock``), never by background work, so tests drive time
with a ``ManualClock`` (its ``sleep_advances=True`` lets simulated waits move the clock
themselves). The one thing sent unasked is a callback, when a task submitted with a callback
URL ends on that clock (``conveyor.sim.callbacks``).
See ``SimConfig`` for the knobs (latency, failures, 404-while-fresh, 429 bursts, 500s,
hangs, result shapes).
"""

from __future__ import annotations

from conveyor.sim.app import ORIGIN_PATHS, PROVIDER_ORIGINS, create_sim_app
from conveyor.sim.config import Behaviour, SimConfig
from conveyor.sim.server import (
    RunningSimulator,
    SimulatorThread,
    run_simulator,
    start_simulator,
)
from conveyor.sim.state import SIM_STATE, SimState

__all__ = [
    "ORIGIN_PATHS",
    "PROVIDER_ORIGINS",
    "SIM_STATE",
    "Behaviour",
    "RunningSimulator",
    "SimConfig",
    "SimState",
    "SimulatorThread",
    "create_sim_app",
    "run_simulator",
    "start_simulator",
]
