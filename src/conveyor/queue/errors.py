"""How a task handler's exception steers the queue: a small protocol the queue owns.

The queue imports no domain, so it does not know the application's error classes. It reads
two optional attributes of whatever a handler raises:

    retryable: bool            False: the task can never succeed; it goes to ``dead`` at once
    retry_after: float | None  seconds to wait before the next attempt (else: backoff)

An exception without ``retryable`` (a bug, a timeout, a dropped connection) is retried with
backoff until ``max_attempts``, then the task is dead. Two are the queue's own: ``LostTask``
(this worker no longer owns the task: another claimed it, so the handler's work is dropped)
and ``TaskParked`` (the handler will be resumed later: see ``Worker.resume``).
"""

from __future__ import annotations

from dataclasses import dataclass


class LostTask(Exception):
    """The fence check failed: the task was reclaimed by another worker."""


class TaskParked(Exception):
    """Raised by a handler that has handed its task to someone who will resume it later
    (``Worker.resume``): the worker keeps the task claimed, holding no coroutine for it."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay: float | None
    # The exception follows the protocol: an outcome its raiser foresaw, not a bug to trace.
    expected: bool


def retry_decision(exc: BaseException) -> RetryDecision:
    """What the protocol above says about ``exc``."""
    retryable = getattr(exc, "retryable", None)
    delay = getattr(exc, "retry_after", None)
    return RetryDecision(
        retry=retryable is not False,
        delay=float(delay) if isinstance(delay, int | float) and delay >= 0 else None,
        expected=isinstance(retryable, bool),
    )
