"""A clock that moves only when told to, for tests that must not depend on wall time.

The simulator reads time through a ``clock`` callable and waits through a ``sleep``
coroutine function (``Prefer: wait``, synchronous call latency). Pass a ``ManualClock`` as
both (``clock=clock, sleep=clock.sleep``): tasks then finish when the test calls
``advance``, and a simulated wait returns at once with the clock moved forward by it.
"""

from __future__ import annotations

import asyncio


class ManualClock:
    """Virtual monotonic time: ``clock()`` reads it, ``advance`` and ``sleep`` move it."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        # Still yield, so code that sleeps in a loop lets other coroutines run.
        await asyncio.sleep(0)
