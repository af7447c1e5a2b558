"""What a task handler raises to steer the queue.

    PermanentTaskError   do not retry: the task goes to ``dead`` with the message
    RetryTaskLater       retry after ``delay`` seconds (counts as an attempt)
    LostTask             this worker no longer owns the task (another claimed it): drop it

Any other exception is retried with backoff until ``max_attempts``, then the task is dead.
"""

from __future__ import annotations


class PermanentTaskError(Exception):
    """The task can never succeed; retrying would only repeat the failure."""


class RetryTaskLater(Exception):
    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class LostTask(Exception):
    """The fence check failed: the task was reclaimed by another worker."""
