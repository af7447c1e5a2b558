"""Items waiting on a pollable provider park in the poll scheduler: no coroutine per waiting
item, one submit per task, cancels reach the provider, a transient failure after the submit
polls the same task again instead of paying for a second one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from conveyor.providers.errors import RetryableProviderError
from tests.integration.conftest import Serve
from tests.support.adapters import PollableFake


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(60):  # guards against hangs only
        while not await check():
            await asyncio.sleep(0.02)


def _item_coroutines() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("task-")]


async def _job(client: httpx.AsyncClient, count: int) -> str:
    body = {"model": "test/pollable", "items": [{"prompt": f"p{n}"} for n in range(count)]}
    answer = await client.post("/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _status(client: httpx.AsyncClient, job_id: str) -> dict[str, object]:
    return dict((await client.get(f"/v1/jobs/{job_id}")).json())


async def test_waiting_items_hold_no_coroutine_and_finish_once(serve: Serve) -> None:
    fake = PollableFake()
    async with serve(fake) as client:
        job_id = await _job(client, 20)

        async def all_parked() -> bool:
            return len(fake.submitted) == 20 and fake.waiting == 20 and not _item_coroutines()

        await _until(all_parked, "every item parked")
        worker = client.app.state.runtime.worker  # type: ignore[attr-defined]
        assert worker.in_flight == 20
        fake.finish.update(fake.submitted)

        async def finished() -> bool:
            return (await _status(client, job_id))["status"] == "completed"

        await _until(finished, "the job finished")
        assert len(fake.submitted) == 20  # none submitted twice
        assert fake.waiting == 0
        assert all(fake.polls[t] >= 1 for t in fake.submitted)
        items = (await client.get(f"/v1/jobs/{job_id}/items")).json()["data"]
        assert {i["status"] for i in items} == {"completed"}
        assert all(i["output"]["files"] for i in items)


async def test_cancelling_a_job_stops_its_parked_items_at_the_provider(serve: Serve) -> None:
    fake = PollableFake()
    async with serve(fake) as client:
        job_id = await _job(client, 5)

        async def parked() -> bool:
            return fake.waiting == 5 and not _item_coroutines()

        await _until(parked, "items parked")
        assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200

        async def stopped() -> bool:
            return sorted(fake.cancelled) == sorted(fake.submitted) and fake.waiting == 0

        await _until(stopped, "cancels sent to the provider")
        status = await _status(client, job_id)
        assert status["status"] == "cancelled"


async def test_a_transient_failure_after_the_submit_polls_the_same_task_again(
    serve: Serve,
) -> None:
    fake = PollableFake()
    async with serve(fake, task_max_attempts=5) as client:
        job_id = await _job(client, 1)
        await _until(lambda: _true_when(fake.waiting == 1), "parked")
        [task_id] = fake.submitted
        fake.polls.clear()
        fake.fail[task_id] = RetryableProviderError("the provider answered 503")

        async def retried() -> bool:
            return task_id not in fake.fail and fake.polls[task_id] >= 2 and fake.waiting == 1

        # The failure is answered once; the item runs again (queue retry) and parks on the
        # same task, which is polled again.
        await _until(retried, "the same task polled again after the failure")
        fake.finish.add(task_id)

        async def finished() -> bool:
            return (await _status(client, job_id))["status"] == "completed"

        await _until(finished, "finished")
        assert fake.submitted == [task_id]  # paid once


async def _true_when(value: bool) -> bool:
    return value
