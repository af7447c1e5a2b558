"""Prometheus metrics of the jobs engine (this process)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STEP_SECONDS = Histogram(
    "conveyor_step_seconds",
    "Time of one model call in a step (submit to result, or to failure)",
    ["model", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
ITEMS_FINISHED = Counter("conveyor_items_finished_total", "Items closed", ["recipe", "status"])
