"""Durable steps on both databases: reuse, resume, fallback, and what each failure means."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.core.clock import ManualClock
from conveyor.core.db import Database
from conveyor.errors import ItemFailed, TemporaryFailure
from conveyor.execution.handler import item_outcome
from conveyor.execution.steps import ItemCancelled
from conveyor.jobs.models import ITEM_CANCELLED, ITEM_FAILED, step_runs
from conveyor.providers.errors import RetryableProviderError
from conveyor.queue import LostTask, QueueRepository
from conveyor.queue.models import queue_tasks
from tests.support.adapters import PollingModel, ScriptedModel
from tests.unit.execution.conftest import Engine

MakeEngine = Callable[..., Engine]


async def test_a_finished_step_is_returned_without_a_second_call(engine: MakeEngine) -> None:
    echo = ScriptedModel()
    e = engine(echo)
    job = await e.job({"model": "test/echo", "items": [{"text": "a"}]})
    first = await (await e.run_of(job)).step("generate", ["test/echo"], {"text": "a"})
    again = await (await e.run_of(job)).step("generate", ["test/echo"], {"text": "a"})
    assert echo.calls["a"] == 1
    assert again.text == first.text == "echo a"
    assert [f.asset_id for f in again.files] == [f.asset_id for f in first.files]


async def test_a_step_with_a_committed_task_id_resumes_polling_it(engine: MakeEngine) -> None:
    poller = PollingModel()
    e = engine(poller)
    job = await e.job({"model": "test/poll", "items": [{"prompt": "x"}]})
    run = await e.run_of(job)
    # The worker dies while the provider works: the call is abandoned mid-poll.
    polling = asyncio.create_task(run.step("generate", ["test/poll"], {"prompt": "x"}))
    while not await _committed_task_ids(e):
        await asyncio.sleep(0.01)
    polling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await polling
    assert poller.submitted == ["task-1"]
    poller.finish_all = True
    output = await (await e.run_of(job)).step("generate", ["test/poll"], {"prompt": "x"})
    assert poller.submitted == ["task-1"]  # never submitted twice
    assert poller.resumed == ["task-1"]
    assert output.files


async def _committed_task_ids(e: Engine) -> list[str]:
    async with e.db.read() as conn:
        return [t for t in await conn.scalars(select(step_runs.c.external_task_id)) if t]


async def test_a_permanent_failure_moves_down_the_chain_and_says_why(
    engine: MakeEngine,
) -> None:
    broken = ScriptedModel(model_id="test/broken", broken={"a"})
    echo = ScriptedModel()
    e = engine(broken, echo)
    job = await e.job(
        {"model": "test/broken", "options": {"fallbacks": ["test/echo"]}, "items": [{"text": "a"}]}
    )
    run = await e.run_of(job)
    output = await run.step("generate", ["test/broken", "test/echo"], {"text": "a"})
    assert output.model_id == "test/echo"
    assert run.provenance["generate"] == {
        "model": "test/echo",
        "fallback_from": [{"model": "test/broken", "error": "test/broken refuses 'a'"}],
    }


async def test_only_transient_failures_left_means_try_later(engine: MakeEngine) -> None:
    flaky = ScriptedModel(model_id="test/flaky", flaky={"a": 5})
    broken = ScriptedModel(model_id="test/broken", broken={"a"})
    e = engine(flaky, broken)
    job = await e.job({"model": "test/flaky", "items": [{"text": "a"}]})
    with pytest.raises(TemporaryFailure) as caught:
        await (await e.run_of(job)).step("generate", ["test/flaky", "test/broken"], {"text": "a"})
    assert caught.value.retryable
    assert caught.value.retry_after == 0.01
    assert item_outcome(caught.value) is None  # back to the queue, not the item's end


async def test_every_model_failing_for_good_fails_the_item(engine: MakeEngine) -> None:
    broken = ScriptedModel(model_id="test/broken", broken={"a"})
    e = engine(broken)
    job = await e.job({"model": "test/broken", "items": [{"text": "a"}]})
    with pytest.raises(ItemFailed) as caught:
        await (await e.run_of(job)).step("generate", ["test/broken"], {"text": "a"})
    ended = item_outcome(caught.value)
    assert ended is not None
    assert ended.status == ITEM_FAILED
    assert ended.code == "STEP_FAILED"
    assert "test/broken: test/broken refuses 'a'" in (ended.error or "")
    async with e.db.read() as conn:
        rows = (await conn.execute(select(step_runs.c.status, step_runs.c.retryable))).all()
    assert [tuple(r) for r in rows] == [("failed", False)]


def test_outcomes_of_errors_are_decided_in_one_place() -> None:
    assert item_outcome(ItemCancelled()) is not None
    assert item_outcome(ItemCancelled()).status == ITEM_CANCELLED  # type: ignore[union-attr]
    assert item_outcome(RetryableProviderError("busy")) is None
    assert item_outcome(ValueError("a bug")) is None
    failed = item_outcome(ItemFailed("bad input", code="BAD"))
    assert failed is not None
    assert (failed.status, failed.error, failed.code) == (ITEM_FAILED, "bad input", "BAD")


async def test_a_worker_that_lost_its_task_stops_before_paying(engine: MakeEngine) -> None:
    echo = ScriptedModel()
    e = engine(echo)
    job = await e.job({"model": "test/echo", "items": [{"text": "a"}]})
    queue = QueueRepository(e.db.dialect, e.deps.clock)
    async with e.db.write() as conn:
        [task] = await queue.claim(conn, "worker-a", 1, stale_after=30)
        # Worker A stalls; worker B takes the task over (a later claim).
        await conn.execute(
            update(queue_tasks)
            .where(queue_tasks.c.id == task.id)
            .values(claims=queue_tasks.c.claims + 1, worker_id="worker-b")
        )
    run = await e.run_of(job)

    async def fence(conn: AsyncConnection) -> None:
        await queue.assert_owned(conn, task)

    run.fence = fence
    with pytest.raises(LostTask):
        await run.step("generate", ["test/echo"], {"text": "a"})
    assert echo.calls["a"] == 0  # never called: nothing paid


async def test_a_submit_cut_short_is_sent_again_and_said_so(engine: MakeEngine) -> None:
    slow = ScriptedModel(model_id="test/slow", delay=30)
    e = engine(slow)
    job = await e.job({"model": "test/slow", "items": [{"text": "a"}]})
    first = asyncio.create_task(
        (await e.run_of(job)).step("generate", ["test/slow"], {"text": "a"})
    )
    while slow.calls["a"] == 0:
        await asyncio.sleep(0.01)
    first.cancel()  # the worker dies while the provider has the request
    with pytest.raises(asyncio.CancelledError):
        await first
    async with e.db.read() as conn:
        statuses = list(await conn.scalars(select(step_runs.c.status)))
    assert statuses == ["submitting"]
    slow.delay = 0
    run = await e.run_of(job)
    output = await run.step("generate", ["test/slow"], {"text": "a"})
    assert output.text == "echo a"
    assert slow.calls["a"] == 2
    assert run.provenance["interrupted_submits"] == [
        {"step": "generate", "model": "test/slow", "deduplicated": False}
    ]
    assert any("may have run it twice" in w for w in run.warnings)
    async with e.db.read() as conn:
        statuses = list(await conn.scalars(select(step_runs.c.status)))
    assert statuses == ["succeeded"]  # the same step run, not a second one


class _PoolExhausted:
    """The engine's database, whose next ``fail`` writes find no free pooled connection."""

    def __init__(self, db: Database, fail: int) -> None:
        self._db = db
        self.fail = fail
        self.refused = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        if self.fail > 0:
            self.fail -= 1
            self.refused += 1
            raise sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached")
        return self._db.write()


async def test_a_paid_result_is_written_again_when_the_database_is_briefly_busy(
    engine: MakeEngine,
) -> None:
    echo = ScriptedModel()
    e = engine(echo)
    job = await e.job({"model": "test/echo", "items": [{"text": "a"}]})
    run = await e.run_of(job)
    busy = _PoolExhausted(e.db, fail=0)
    run.deps = dataclasses.replace(e.deps, db=busy)  # type: ignore[arg-type]
    clock = e.deps.clock
    assert isinstance(clock, ManualClock)
    clock.sleep_advances = True  # the pauses between tries pass on the engine's clock
    slept_from = e.deps.clock.monotonic()

    real_run = echo.run

    async def run_then_exhaust_the_pool(*args: Any, **kwargs: Any) -> Any:
        output = await real_run(*args, **kwargs)
        busy.fail = 3  # the three writes after the paid call find no connection
        return output

    echo.run = run_then_exhaust_the_pool  # type: ignore[method-assign]
    output = await run.step("generate", ["test/echo"], {"text": "a"})
    assert output.text == "echo a"
    assert busy.refused == 3
    assert echo.calls["a"] == 1
    # Waited between tries on the engine's clock: 0.5 + 1 + 2 s.
    assert e.deps.clock.monotonic() - slept_from == pytest.approx(3.5)
    again = await (await e.run_of(job)).step("generate", ["test/echo"], {"text": "a"})
    assert again.text == "echo a"
    assert echo.calls["a"] == 1  # stored: never paid twice


async def test_a_write_failing_for_good_is_not_retried_forever(engine: MakeEngine) -> None:
    echo = ScriptedModel()
    e = engine(echo)
    job = await e.job({"model": "test/echo", "items": [{"text": "a"}]})
    run = await e.run_of(job)
    busy = _PoolExhausted(e.db, fail=0)
    run.deps = dataclasses.replace(e.deps, db=busy)  # type: ignore[arg-type]
    clock = e.deps.clock
    assert isinstance(clock, ManualClock)
    clock.sleep_advances = True  # the pauses between tries pass on the engine's clock
    real_run = echo.run

    async def run_then_break(*args: Any, **kwargs: Any) -> Any:
        output = await real_run(*args, **kwargs)
        busy.fail = 100
        return output

    echo.run = run_then_break  # type: ignore[method-assign]
    with pytest.raises(sqlalchemy.exc.TimeoutError):
        await run.step("generate", ["test/echo"], {"text": "a"})
    assert busy.refused == 6
