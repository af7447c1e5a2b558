"""Per-provider limits: in-flight cap, request rate, Retry-After pauses, a circuit breaker.

Every HTTP request to a provider goes through ``ProviderLimits.slot()``:

1. the circuit is checked first: while it is open, calls fail at once with a retryable
   error (no point queueing behind a provider that answers 5xx to everyone); after the
   cooldown one probe goes through (half-open) and its outcome closes or reopens it;
2. a semaphore caps concurrent requests (``max_in_flight``);
3. a token bucket spaces requests (``requests_per_second``); a 429's ``Retry-After``
   pauses the whole bucket, so every caller of that provider backs off, not just one.

The slot's outcome feeds the circuit (5xx, timeouts and connection errors count as
failures; 4xx do not: the provider is up and said no), Prometheus, and a rolling window
that ``health()`` summarises for ``GET /v1/providers``. Time comes from the engine's
``Clock`` (``monotonic()`` and ``sleep``), so tests move it by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Literal, Self

from prometheus_client import Counter, Gauge, Histogram

from conveyor.core.clock import Clock, SystemClock
from conveyor.core.time_budget import waiting_turn
from conveyor.providers.errors import RetryableProviderError

if TYPE_CHECKING:
    from conveyor.providers.spec import ProviderSpec

__all__ = [
    "CIRCUIT_OPEN",
    "IN_FLIGHT",
    "REQUESTS",
    "REQUEST_SECONDS",
    "CircuitBreaker",
    "CircuitOpen",
    "CircuitState",
    "Outcome",
    "ProviderHealth",
    "ProviderLimits",
    "RequestSlot",
    "TokenBucket",
    "parse_retry_after",
]

IN_FLIGHT = Gauge(
    "conveyor_provider_in_flight", "HTTP requests to the provider right now", ["provider"]
)
REQUESTS = Counter(
    "conveyor_provider_requests_total", "HTTP requests by outcome", ["provider", "outcome"]
)
CIRCUIT_OPEN = Gauge(
    "conveyor_provider_circuit_open", "1 while the provider's circuit is open", ["provider"]
)
REQUEST_SECONDS = Histogram(
    "conveyor_provider_request_seconds",
    "HTTP request latency, body included",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

Outcome = Literal[
    "success",
    "client_error",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "rejected",
    "cancelled",
]
CircuitState = Literal["closed", "open", "half_open"]
# What says "the provider is unwell" (as opposed to "the provider said no").
_FAILURES: frozenset[str] = frozenset({"server_error", "timeout", "connection_error"})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


class CircuitOpen(RetryableProviderError):
    code = "PROVIDER_CIRCUIT_OPEN"


class TokenBucket:
    """``rate`` tokens a second, up to ``burst``; waiters are served in arrival order."""

    def __init__(self, rate: float | None, burst: int | None, clock: Clock) -> None:
        self.rate = rate
        self.capacity = float(burst or max(1, math.ceil(rate or 1)))
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (a 429's Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock.monotonic())

    async def acquire(self) -> None:
        async with self._lock:  # asyncio.Lock is FIFO: the lock is the queue
            while True:
                pause = self.paused_for()
                if pause > 0:
                    await self._clock.sleep(pause)
                    continue
                if self.rate is None:
                    return
                self._refill()
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await self._clock.sleep((1.0 - self._tokens) / self.rate)

    def _refill(self) -> None:
        now = self._clock.monotonic()
        assert self.rate is not None
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures → half-open after ``cooldown``."""

    def __init__(self, provider: str, threshold: int, cooldown: float, clock: Clock) -> None:
        self.provider = provider
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._state: CircuitState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        CIRCUIT_OPEN.labels(provider).set(0)

    @property
    def state(self) -> CircuitState:
        if self._state == "open" and self._clock.monotonic() - self._opened_at >= self.cooldown:
            return "half_open"
        return self._state

    def retry_in(self) -> float:
        return max(0.0, self._opened_at + self.cooldown - self._clock.monotonic())

    def admit(self) -> bool:
        """May a request go now? Returns True if this request is the half-open probe."""
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probing:
            self._state = "half_open"
            self._probing = True
            return True
        raise CircuitOpen(
            f"{self.provider} is failing (circuit open after {self.threshold} consecutive "
            f"errors); next try in {self.retry_in():.0f} s",
            provider=self.provider,
            retry_after=self.retry_in() or self.cooldown,
        )

    def record(self, outcome: Outcome, *, probe: bool) -> None:
        if probe:
            self._probing = False
        if outcome in _FAILURES:
            self._failures += 1
            if probe or self._failures >= self.threshold:
                self._open()
        elif outcome in ("success", "client_error", "rate_limited"):
            self._failures = 0
            if self._state != "closed":
                self._state = "closed"
                CIRCUIT_OPEN.labels(self.provider).set(0)

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock.monotonic()
        CIRCUIT_OPEN.labels(self.provider).set(1)


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """A snapshot for ``GET /v1/providers``; ``error_rate`` is over the last ``window_s``."""

    provider: str
    circuit: CircuitState
    in_flight: int
    max_in_flight: int
    active_tasks: int
    requests: int
    errors: int
    error_rate: float
    window_s: float
    paused_for_s: float
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class RequestSlot:
    """Held for one request; the caller reports how it went with ``record``."""

    outcome: Outcome | None = None

    def record(self, outcome: Outcome) -> None:
        self.outcome = outcome


class ProviderLimits:
    """Everything that limits and watches the requests to one provider."""

    def __init__(
        self,
        provider: str,
        *,
        max_in_flight: int = 32,
        requests_per_second: float | None = None,
        burst: int | None = None,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        window: float = 300.0,
        clock: Clock | None = None,
    ) -> None:
        self.provider = provider
        self.clock: Clock = clock or SystemClock()
        self.max_in_flight = max_in_flight
        self.window = window
        self.circuit = CircuitBreaker(provider, failure_threshold, cooldown, self.clock)
        self.bucket = TokenBucket(requests_per_second, burst, self.clock)
        self._semaphore = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._active_tasks = 0
        self._recent: deque[tuple[float, Outcome]] = deque(maxlen=20_000)

    @classmethod
    def from_spec(cls, spec: ProviderSpec, *, clock: Clock | None = None) -> Self:
        """Limits as the spec states them."""
        limits = spec.limits
        return cls(
            spec.name,
            max_in_flight=limits.max_in_flight,
            requests_per_second=limits.requests_per_second,
            burst=limits.burst,
            failure_threshold=limits.failure_threshold,
            cooldown=limits.cooldown,
            clock=clock,
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[RequestSlot]:
        """Wait for the right to send one request; fail fast while the circuit is open."""
        try:
            probe = self.circuit.admit()
        except CircuitOpen:
            self._note("rejected")
            raise
        slot = RequestSlot()
        started = self.clock.monotonic()
        try:
            # Waiting for the right to send is not work: an item's time budget skips it.
            with waiting_turn():
                await self._semaphore.acquire()
            try:
                with waiting_turn():
                    await self.bucket.acquire()
                self._in_flight += 1
                IN_FLIGHT.labels(self.provider).inc()
                try:
                    yield slot
                finally:
                    self._in_flight -= 1
                    IN_FLIGHT.labels(self.provider).dec()
            finally:
                self._semaphore.release()
        finally:
            # No outcome means the caller raised before classifying: count it as ours, not
            # the provider's, so a bug here never opens the circuit.
            outcome: Outcome = slot.outcome or "cancelled"
            if outcome != "cancelled":
                REQUEST_SECONDS.labels(self.provider).observe(self.clock.monotonic() - started)
            self.circuit.record(outcome, probe=probe)
            self._note(outcome)

    def pause(self, seconds: float) -> None:
        """Honour a 429's Retry-After for every caller of this provider."""
        self.bucket.pause(seconds)

    @asynccontextmanager
    async def task(self) -> AsyncIterator[None]:
        """Count a submitted-but-unfinished task (shown in health, never limited)."""
        self.task_started()
        try:
            yield
        finally:
            self.task_ended()

    def task_started(self) -> None:
        """Count a task waited on without a coroutine (see ``task``)."""
        self._active_tasks += 1

    def task_ended(self) -> None:
        self._active_tasks = max(0, self._active_tasks - 1)

    def _note(self, outcome: Outcome) -> None:
        REQUESTS.labels(self.provider, outcome).inc()
        self._recent.append((self.clock.monotonic(), outcome))

    def health(self) -> ProviderHealth:
        horizon = self.clock.monotonic() - self.window
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        counts: dict[str, int] = {}
        for _, outcome in self._recent:
            counts[outcome] = counts.get(outcome, 0) + 1
        sent = sum(n for name, n in counts.items() if name not in ("rejected", "cancelled"))
        errors = sum(n for name, n in counts.items() if name in _FAILURES)
        return ProviderHealth(
            provider=self.provider,
            circuit=self.circuit.state,
            in_flight=self._in_flight,
            max_in_flight=self.max_in_flight,
            active_tasks=self._active_tasks,
            requests=sent,
            errors=errors,
            error_rate=round(errors / sent, 4) if sent else 0.0,
            window_s=self.window,
            paused_for_s=round(self.bucket.paused_for(), 3),
            outcomes=counts,
        )
