"""Local engine entry points for tests; they run in the engine pool's spawn processes, so
they live in an importable module."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from conveyor.providers.local.engine import EngineOptions, EngineResult


def die_once(values: dict[str, Any], options: EngineOptions) -> EngineResult:
    """Kill the process running it the first time (a crashing native library, an OOM kill);
    answer normally once ``marker`` exists."""
    marker = Path(values["marker"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return EngineResult(text=f"survived; the first process was {marker.read_text()}")
