"""Sync-mode time limits on the engine clock: the 45 s translation budget with its English
fallback, and the whole wait's 504 whose job goes on. A ``ManualClock`` drives Conveyor
and the simulator's latencies alike; nothing here waits for real time to pass."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.core.clock import ManualClock
from tests.integration.compat.descriptions_stack import (
    KEYS,
    TRANSLATE_MODEL,
    VISION_MODEL,
    StartStack,
    until,
)
from tests.integration.compat.seed_client import SeedClient, SeedClientError


def latency(model: str, seconds: float) -> dict[str, dict[str, float]]:
    return {f"openai/{model}": {"latency_min": seconds, "latency_max": seconds}}


async def test_translations_late_for_the_45_s_budget_come_back_in_english(
    start_stack: StartStack,
) -> None:
    clock = ManualClock()
    async with start_stack(clock=clock, sim={"models": latency(TRANSLATE_MODEL, 100)}) as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        answer = asyncio.create_task(
            client.sync_generate(
                "car-5", [stack.images.url("img/a.jpg")], "2022 Kia Rio", ["en", "ru", "de"]
            )
        )
        # Parked: the request's wait, the translation budget, two translations.
        await until(lambda: clock.sleepers == 4)
        clock.advance(44)
        # ``advance`` wakes every sleeper that is due before it returns: all four still
        # parked means no deadline fell within 44 s, the budget's included.
        assert clock.sleepers == 4
        assert not answer.done()

        clock.advance(1)
        assert clock.sleepers == 3  # the budget, and nothing else, ran out at 45 s
        result = await asyncio.wait_for(answer, 20)

        english, russian, german = result["lots"][0]["descriptions"]
        assert english["language"] == "en"
        assert "2022 Kia Rio" in english["damages"]
        assert russian == {"language": "ru", "damages": english["damages"]}
        assert german == {"language": "de", "damages": english["damages"]}
        assert result["warnings"] == [
            "processing 3 languages may increase response time",
            "translation to Russian (ru) did not finish within the 45 s translation budget; "
            "the English text is given instead",
            "translation to German (de) did not finish within the 45 s translation budget; "
            "the English text is given instead",
        ]
        assert stack.counters() == {VISION_MODEL: 1, TRANSLATE_MODEL: 2}


async def test_translations_within_the_budget_are_kept(start_stack: StartStack) -> None:
    clock = ManualClock()
    async with start_stack(clock=clock, sim={"models": latency(TRANSLATE_MODEL, 40)}) as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        answer = asyncio.create_task(
            client.sync_generate("car-6", [stack.images.url("img/a.jpg")], "", ["en", "fr"])
        )
        await until(lambda: clock.sleepers == 3)
        clock.advance(40)
        result = await answer
        assert result["warnings"] == []
        assert "[fr] " in result["lots"][0]["descriptions"][1]["damages"]


async def test_an_answer_later_than_the_wait_is_a_504_and_the_work_goes_on(
    start_stack: StartStack,
) -> None:
    clock = ManualClock()
    async with start_stack(clock=clock, sim={"models": latency(VISION_MODEL, 400)}) as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        image = stack.images.url("img/a.jpg")
        answer = asyncio.create_task(client.sync_generate("car-8", [image], "", ["en", "ru"]))
        await until(lambda: clock.sleepers == 2)  # the request's wait and the vision call
        clock.advance(289)
        assert clock.sleepers == 2  # nothing was due within 289 s (see the test above)
        assert not answer.done()
        clock.advance(1)
        assert clock.sleepers == 1  # the request's wait ran out at 290 s; the call goes on

        with pytest.raises(SeedClientError) as timed_out:
            await asyncio.wait_for(answer, 20)
        error = timed_out.value
        assert error.status == 504
        assert "timeout" in str(error).lower()  # what the seed's callers look for
        job_id = error.body["job_id"]
        assert f"/api/v1/batch-results/{job_id}" in error.body["message"]
        assert (await client.get_job_status(job_id))["status"] == "processing"
        assert await client.get_results(job_id) is None

        # The seed's advice after a timeout, retry with fewer languages: the same job
        # answers it when it is done, and nothing is paid for twice.
        retry = asyncio.create_task(client.sync_generate("car-8", [image], "", ["en"]))
        await until(lambda: clock.sleepers == 2)  # the retry's wait and the same vision call
        clock.advance(110)
        retried = await retry

        results = await client.get_results(job_id)
        assert results is not None
        assert results["status"] == "completed"
        [described] = results["results"]["lots"]
        assert [d["language"] for d in described["descriptions"]] == ["en", "ru"]
        assert retried["lots"][0]["descriptions"] == described["descriptions"][:1]
        assert stack.counters() == {VISION_MODEL: 1, TRANSLATE_MODEL: 1}
