"""Model adapters for engine tests: behaviours a test can script (slow, flaky, failing,
submit-then-poll). They implement the real ``ModelAdapter`` port; remote providers are
tested against the simulator instead."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from conveyor.providers.base import (
    Availability,
    Checkpoint,
    ModelCall,
    ModelOutput,
    PollResult,
    ProviderState,
    TaskWait,
)
from conveyor.providers.errors import (
    PermanentProviderError,
    ProviderCancelled,
    RetryableProviderError,
)


def _entry(adapter: Any) -> dict[str, Any]:
    found = adapter.availability()
    return {
        "id": adapter.model_id,
        "kind": adapter.kind,
        "provider": "test",
        "title": adapter.model_id,
        "description": "a scripted model for tests",
        "pros": [],
        "cons": [],
        "tags": ["test"],
        "spec": {},
        "available": found.available,
        "unavailable_reason": found.reason,
        "enable_with": found.enable_with,
    }


@dataclass
class ScriptedModel:
    """Answers ``echo <text>`` and stores a small file; failures are scripted per input."""

    model_id: str = "test/echo"
    kind: str = "text"
    delay: float = 0.0
    # text -> number of calls that raise a retryable error before succeeding
    flaky: dict[str, int] = field(default_factory=dict)
    # texts that always fail permanently
    broken: set[str] = field(default_factory=set)
    available: bool = True
    calls: Counter[str] = field(default_factory=Counter)

    def availability(self) -> Availability:
        if self.available:
            return Availability(True)
        return Availability(False, "switched off by the test", "TEST_SWITCH")

    def catalogue_entry(self) -> dict[str, Any]:
        return _entry(self)

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        text = str(call.inputs.get("text", ""))
        self.calls[text] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if text in self.broken:
            raise PermanentProviderError(f"{self.model_id} refuses {text!r}")
        if self.flaky.get(text, 0) > 0:
            self.flaky[text] -= 1
            raise RetryableProviderError(f"{self.model_id} is busy", retry_after=0.01)
        stored = await call.files.store(f"{self.model_id}:{text}".encode())
        return ModelOutput(text=f"echo {text}", files=[stored], cost=0.5)


@dataclass
class PollingModel:
    """Submits, checkpoints the task id, then polls until ``finish`` holds the id."""

    model_id: str = "test/poll"
    kind: str = "image"
    poll_interval: float = 0.02
    submitted: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    finish: set[str] = field(default_factory=set)
    finish_all: bool = False

    def availability(self) -> Availability:
        return Availability(True)

    def catalogue_entry(self) -> dict[str, Any]:
        return _entry(self)

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        if resume is None:
            task_id = f"task-{len(self.submitted) + 1}"
            self.submitted.append(task_id)
            await checkpoint(ProviderState(task_id, {"n": len(self.submitted)}))
        else:
            task_id = resume.external_task_id
            self.resumed.append(task_id)
        while not (self.finish_all or task_id in self.finish):
            if call.is_cancelled():
                self.cancelled.append(task_id)
                raise ProviderCancelled("job cancelled")
            await asyncio.sleep(self.poll_interval)
        stored = await call.files.store(b"\x89PNG\r\n\x1a\n" + task_id.encode())
        return ModelOutput(files=[stored])


@dataclass
class PollableFake:
    """A remote model the engine may park on (``PollableAdapter``): submit, then one poll at
    a time until the test puts the task id in ``finish`` (or ``fail``)."""

    model_id: str = "test/pollable"
    kind: str = "image"
    pause: float = 0.01
    max_wait: float = 3600.0
    submitted: list[str] = field(default_factory=list)
    polls: Counter[str] = field(default_factory=Counter)
    cancelled: list[str] = field(default_factory=list)
    finish: set[str] = field(default_factory=set)
    # Answered once by the next poll of that task, then forgotten.
    fail: dict[str, Exception] = field(default_factory=dict)
    waiting: int = 0

    def availability(self) -> Availability:
        return Availability(True)

    def catalogue_entry(self) -> dict[str, Any]:
        return _entry(self)

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        begun = await self.begin(call, resume=resume, checkpoint=checkpoint)
        assert isinstance(begun, TaskWait)
        try:
            while True:
                await asyncio.sleep(begun.pause)
                polled = await self.poll(begun)
                if polled.final:
                    if polled.error is not None:
                        raise polled.error
                    return await self.collect(call, begun.state, polled.answer)
        finally:
            self.wait_ended(begun)

    async def begin(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput | TaskWait:
        if resume is None:
            task_id = f"task-{len(self.submitted) + 1}"
            self.submitted.append(task_id)
            resume = ProviderState(task_id)
            await checkpoint(resume)
        self.waiting += 1
        return TaskWait(resume, pause=self.pause, deadline=time.monotonic() + self.max_wait)

    async def poll(self, wait: TaskWait) -> PollResult:
        task_id = wait.state.external_task_id
        self.polls[task_id] += 1
        if task_id in self.fail:
            return PollResult(final=True, error=self.fail.pop(task_id))
        if task_id in self.finish:
            return PollResult(final=True, answer=task_id)
        wait.pause = self.pause
        return PollResult(final=False)

    async def collect(self, call: ModelCall, state: ProviderState, answer: Any) -> ModelOutput:
        stored = await call.files.store(b"\x89PNG\r\n\x1a\n" + str(answer).encode())
        return ModelOutput(files=[stored])

    async def cancel(self, wait: TaskWait) -> None:
        self.cancelled.append(wait.state.external_task_id)

    def timed_out(self, wait: TaskWait) -> Exception:
        return PermanentProviderError(f"task {wait.state.external_task_id} took too long")

    def wait_ended(self, wait: TaskWait) -> None:
        self.waiting -= 1
