"""``conveyor worker`` under tracemalloc, for ``bench peer --profile``.

``python -m bench._peer_profiled_worker`` runs the worker unchanged, except that tracemalloc
records from the start and every ``SIGUSR2`` writes a snapshot to
``BENCH_PEER_SNAPSHOT.<n>`` (bench only; nothing in ``src/`` knows about it). A snapshot is
written under a temporary name and renamed, so the benchmark never reads half a file. The
handler runs on the main thread between two callbacks of the event loop. Only the standard
library is imported here, so the worker holds what it always holds.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

SNAPSHOT_VARIABLE = "BENCH_PEER_SNAPSHOT"
FRAMES = 12  # traceback depth tracemalloc keeps (more is slower, fewer hides the caller)


class Snapshots:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.taken = 0

    def take(self, _signum: int, _frame: FrameType | None) -> None:
        path = Path(f"{self.prefix}.{self.taken}")
        partial = path.with_name(path.name + ".partial")
        tracemalloc.take_snapshot().dump(str(partial))
        os.replace(partial, path)
        self.taken += 1


def main() -> None:
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR2, Snapshots(os.environ[SNAPSHOT_VARIABLE]).take)
    from conveyor.cli import main as conveyor

    sys.argv = ["conveyor", "worker"]
    conveyor()


if __name__ == "__main__":
    main()
