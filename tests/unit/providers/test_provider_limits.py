from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from prometheus_client import REGISTRY

from conveyor.core.clock import ManualClock
from conveyor.providers.errors import RetryableProviderError
from conveyor.providers.limits import (
    CircuitBreaker,
    CircuitOpen,
    Outcome,
    ProviderLimits,
    TokenBucket,
    parse_retry_after,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def state_of(circuit: CircuitBreaker) -> str:
    # A call, not an attribute, so mypy does not narrow it between transitions.
    return circuit.state


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(value: str | None, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


async def test_token_bucket_spaces_requests_at_the_rate() -> None:
    clock = ManualClock(sleep_advances=True)
    bucket = TokenBucket(rate=4, burst=2, clock=clock)
    start = clock.monotonic()
    for _ in range(10):
        await bucket.acquire()
    # 2 from the burst, then 8 more at 4/s.
    assert clock.monotonic() - start == pytest.approx(2.0)


async def test_token_bucket_pause_holds_every_caller() -> None:
    clock = ManualClock(sleep_advances=True)
    bucket = TokenBucket(rate=None, burst=None, clock=clock)
    start = clock.monotonic()
    bucket.pause(7)
    await bucket.acquire()
    assert clock.monotonic() - start == pytest.approx(7)
    await bucket.acquire()
    assert clock.monotonic() - start == pytest.approx(7)


def test_circuit_opens_after_consecutive_failures_and_half_opens_after_cooldown() -> None:
    clock = ManualClock(sleep_advances=True)
    circuit = CircuitBreaker("cb-test", threshold=3, cooldown=30, clock=clock)
    outcomes: tuple[Outcome, ...] = (
        "server_error",
        "timeout",
        "success",
        "server_error",
        "server_error",
    )
    for outcome in outcomes:
        assert circuit.admit() is False
        circuit.record(outcome, probe=False)
    assert state_of(circuit) == "closed"  # the success reset the count
    circuit.record("connection_error", probe=False)
    assert state_of(circuit) == "open"
    assert sample("conveyor_provider_circuit_open", provider="cb-test") == 1
    with pytest.raises(CircuitOpen) as caught:
        circuit.admit()
    assert isinstance(caught.value, RetryableProviderError)
    assert caught.value.retry_after == pytest.approx(30)
    clock.advance(30)
    assert state_of(circuit) == "half_open"
    assert circuit.admit() is True  # the one probe
    with pytest.raises(CircuitOpen):
        circuit.admit()  # everyone else waits for the probe
    circuit.record("server_error", probe=True)
    assert state_of(circuit) == "open"  # a failed probe reopens at once
    clock.advance(30)
    assert circuit.admit() is True
    circuit.record("client_error", probe=True)  # a 4xx means the provider is up
    assert state_of(circuit) == "closed"
    assert sample("conveyor_provider_circuit_open", provider="cb-test") == 0


async def test_slots_cap_in_flight_requests_and_expose_metrics() -> None:
    clock = ManualClock(sleep_advances=True)
    limits = ProviderLimits("cap-test", max_in_flight=2, clock=clock)
    release = asyncio.Event()
    peak = 0

    async def request() -> None:
        nonlocal peak
        async with limits.slot() as slot:
            peak = max(peak, limits.health().in_flight)
            assert sample("conveyor_provider_in_flight", provider="cap-test") <= 2
            await release.wait()
            slot.record("success")

    tasks = [asyncio.create_task(request()) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert limits.health().in_flight == 2
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2
    assert limits.health().in_flight == 0
    assert sample("conveyor_provider_requests_total", provider="cap-test", outcome="success") == 5


async def test_health_reports_error_rate_over_the_window_and_circuit_state() -> None:
    clock = ManualClock(sleep_advances=True)
    limits = ProviderLimits("health-test", failure_threshold=3, cooldown=10, window=60, clock=clock)
    seen: tuple[Outcome, ...] = ("server_error", "success", "timeout", "success")
    for outcome in seen:
        async with limits.slot() as slot:
            slot.record(outcome)
    health = limits.health()
    assert (health.requests, health.errors, health.error_rate) == (4, 2, 0.5)
    assert health.circuit == "closed"
    clock.advance(61)  # old outcomes leave the window
    assert limits.health().requests == 0
    for _ in range(3):
        async with limits.slot() as slot:
            slot.record("server_error")
    with pytest.raises(CircuitOpen):
        async with limits.slot():
            pass
    health = limits.health()
    assert health.circuit == "open"
    assert health.outcomes["rejected"] == 1
    assert health.requests == 3  # rejected calls never reached the provider


async def test_a_slot_left_without_an_outcome_never_opens_the_circuit() -> None:
    limits = ProviderLimits("bug-test", failure_threshold=1, clock=ManualClock(sleep_advances=True))
    with pytest.raises(RuntimeError):
        async with limits.slot():
            raise RuntimeError("bug in the caller")
    assert limits.health().circuit == "closed"


async def test_active_tasks_are_counted() -> None:
    limits = ProviderLimits("tasks-test", clock=ManualClock(sleep_advances=True))
    async with limits.task(), limits.task():
        assert limits.health().active_tasks == 2
    assert limits.health().active_tasks == 0
