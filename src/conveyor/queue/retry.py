"""Exponential backoff with full jitter and a cap."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    base_delay: float = 2.0
    max_delay: float = 300.0
    # A fraction of the delay kept fixed, so retries never bunch up at zero.
    floor_fraction: float = 0.5
    random: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1 for the first retry)."""
        exponential = self.base_delay * (2.0 ** max(0, attempt - 1))
        ceiling = min(self.max_delay, exponential)
        floor = ceiling * self.floor_fraction
        return floor + (ceiling - floor) * self.random()
