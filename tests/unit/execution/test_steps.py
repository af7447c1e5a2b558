"""Durable steps on both databases: reuse, resume, fallback, and what each failure means."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import select

from conveyor.errors import ItemFailed, TemporaryFailure
from conveyor.execution.handler import item_outcome
from conveyor.execution.steps import ItemCancelled
from conveyor.jobs.models import ITEM_CANCELLED, ITEM_FAILED, step_runs
from conveyor.providers.errors import RetryableProviderError
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
