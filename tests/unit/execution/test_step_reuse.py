"""Steps with a reuse key, on both databases: the same work of one client is made once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.assets.models import assets
from conveyor.clients.service import LOCAL_CLIENT, Client, ClientService
from conveyor.core.clock import ManualClock
from conveyor.errors import ItemFailed
from conveyor.execution.steps import scoped_reuse_key
from conveyor.jobs.models import JobRow, step_runs
from conveyor.jobs.schemas import JobCreate
from tests.support.adapters import ScriptedModel
from tests.unit.execution.conftest import Engine

MakeEngine = Callable[..., Engine]
ECHO = ["test/echo"]


async def new_job(e: Engine, client: Client = LOCAL_CLIENT, text: str = "a") -> JobRow:
    submission = e.jobs.prepare(
        JobCreate.model_validate({"model": "test/echo", "items": [{"text": text}]})
    )
    async with e.db.write() as conn:
        return (await e.jobs.create(conn, client, submission)).job


async def other_client(e: Engine) -> Client:
    async with e.db.write() as conn:
        return await ClientService(e.db, e.deps.clock).ensure_client(conn, "someone-else")


async def rows(e: Engine, *columns: Any) -> list[tuple[Any, ...]]:
    async with e.db.read() as conn:
        return [tuple(r) for r in await conn.execute(select(*columns).order_by(*columns))]


async def test_the_same_key_takes_the_earlier_output_without_a_call(engine: MakeEngine) -> None:
    echo = ScriptedModel()
    e = engine(echo)
    first_job, second_job = await new_job(e), await new_job(e)
    first = await (await e.run_of(first_job)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    run = await e.run_of(second_job)
    second = await run.step("generate", ECHO, {"text": "a"}, reuse_key="k")

    assert echo.calls["a"] == 1
    assert (first.reused, second.reused) == (False, True)
    assert second.text == first.text == "echo a"
    assert second.model_id == "test/echo"
    assert second.cost is None  # nothing was paid for this time
    assert run.provenance["generate"] == {"model": "test/echo", "reused": True}
    # The file is the same bytes under an asset row of the new job's own.
    [old], [new] = first.files, second.files
    assert new.asset_id != old.asset_id
    assert (new.sha256, new.size, new.mime_type) == (old.sha256, old.size, old.mime_type)
    async with e.db.read() as conn:
        owners = dict(
            (r.id, (r.job_id, r.storage_key, r.meta))
            for r in await conn.execute(
                select(assets.c.id, assets.c.job_id, assets.c.storage_key, assets.c.meta)
            )
        )
    assert owners[new.asset_id][0] == second_job.id
    assert owners[new.asset_id][1] == owners[old.asset_id][1]
    assert owners[new.asset_id][2] == {"reused_from": old.asset_id}
    key = scoped_reuse_key(LOCAL_CLIENT.id, "k")
    assert await rows(e, step_runs.c.reuse_key, step_runs.c.status) == [
        (key, "succeeded"),
        (key, "succeeded"),
    ]


async def test_a_resumed_item_keeps_its_reused_output(engine: MakeEngine) -> None:
    echo = ScriptedModel()
    e = engine(echo)
    first_job, second_job = await new_job(e), await new_job(e)
    await (await e.run_of(first_job)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    reused = await (await e.run_of(second_job)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    run = await e.run_of(second_job)  # the worker died; the item runs again
    again = await run.step("generate", ECHO, {"text": "a"}, reuse_key="k")
    assert echo.calls["a"] == 1
    assert again.reused is True
    assert [f.asset_id for f in again.files] == [f.asset_id for f in reused.files]
    assert run.provenance["generate"]["reused"] is True


@pytest.mark.parametrize(
    ("second_key", "reuse"),
    [("another key", True), ("k", False)],
    ids=["other key", "reuse off"],
)
async def test_other_work_or_reuse_off_calls_the_model(
    engine: MakeEngine, second_key: str, reuse: bool
) -> None:
    echo = ScriptedModel()
    e = engine(echo)
    first_job, second_job, third_job = await new_job(e), await new_job(e), await new_job(e)
    await (await e.run_of(first_job)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    output = await (await e.run_of(second_job)).step(
        "generate", ECHO, {"text": "a"}, reuse_key=second_key, reuse=reuse
    )
    assert echo.calls["a"] == 2
    assert output.reused is False
    # With reuse off the key is still recorded: later work with it may take this output.
    third = await (await e.run_of(third_job)).step(
        "generate", ECHO, {"text": "a"}, reuse_key=second_key
    )
    assert echo.calls["a"] == 2
    assert [f.sha256 for f in third.files] == [f.sha256 for f in output.files]


async def test_one_clients_work_is_never_anothers(engine: MakeEngine) -> None:
    echo = ScriptedModel()
    e = engine(echo)
    stranger = await other_client(e)
    mine, theirs = await new_job(e), await new_job(e, stranger)
    await (await e.run_of(mine)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    output = await (await e.run_of(theirs)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    assert echo.calls["a"] == 2
    assert output.reused is False
    assert scoped_reuse_key(stranger.id, "k") != scoped_reuse_key(LOCAL_CLIENT.id, "k")


async def test_purged_files_and_failed_steps_are_never_reused(engine: MakeEngine) -> None:
    broken = ScriptedModel(model_id="test/broken", broken={"a"})
    echo = ScriptedModel()
    e = engine(broken, echo)
    failing, purged, later, last = [await new_job(e) for _ in range(4)]
    with pytest.raises(ItemFailed):
        await (await e.run_of(failing)).step(
            "generate", ["test/broken"], {"text": "a"}, reuse_key="k"
        )
    made = await (await e.run_of(purged)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    assert made.reused is False  # the failed step under the same key was not taken
    assert echo.calls["a"] == 1
    async with e.db.write() as conn:
        await e.deps.assets.delete_of_jobs(conn, [purged.id])
    clock = e.deps.clock
    assert isinstance(clock, ManualClock)
    clock.advance(1)
    remade = await (await e.run_of(later)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    assert remade.reused is False
    assert echo.calls["a"] == 2
    # The newest file under the key is the one taken.
    taken = await (await e.run_of(last)).step("generate", ECHO, {"text": "a"}, reuse_key="k")
    assert taken.reused is True
    assert echo.calls["a"] == 2
