"""Prometheus metrics of this process's worker; queue depth is read from the database at
scrape time (see ``conveyor.api`` metrics endpoint)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CLAIMS = Counter("conveyor_queue_claims_total", "Tasks claimed by this process")
IN_FLIGHT = Gauge("conveyor_queue_in_flight", "Tasks running in this process")
FAILURES = Counter(
    "conveyor_queue_failures_total", "Task failures by outcome", ["handler", "outcome"]
)
TASK_SECONDS = Histogram(
    "conveyor_queue_task_seconds",
    "Time from claim to outcome",
    ["handler", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900, 3600),
)
