"""Seed 002's front end against a live Conveyor with simulated providers, on both databases.

The engine and the simulator share a ``ManualClock``: with ``sleep_advances`` every wait
(a poll pause, a rate limit, the front end's 2 s between polls) moves the clock itself, so
nothing here waits for real time; where a test must hold the providers still, the clock
only moves when the test says so.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conveyor.core.clock import ManualClock
from conveyor.jobs.models import step_runs
from tests.integration.compat.descriptions_stack import Stack, StartStack, until
from tests.integration.compat.media_stack import FrontEnd, clock_pace, words

SPEECH_MODEL = "tts-1"  # the openai/speech spec's default model name
ZIMAGE = "z-image"


def submissions(stack: Stack, protocol: str, model: str) -> int:
    return int(stack.sim.counters()["submissions"].get(protocol, {}).get(model, 0))


async def key_for(stack: Stack, user: str) -> str:
    key, _ = await stack.runtime.clients.create_key(user)
    return str(key)


def by_word(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["word"]: result for result in task["results"]}


def ascending(values: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


async def test_a_front_end_runs_100_words_through_failures_cancel_and_retry(
    start_stack: StartStack,
) -> None:
    clock = ManualClock(sleep_advances=True)
    async with start_stack(
        clock=clock, sim={"failure_rate": 0.1}, media_image_models=["genapi/z-image"]
    ) as stack:
        front = FrontEnd(stack.base_url, await key_for(stack, "alice"), pause=clock_pace(clock))
        # Half the words want a picture only: a failed picture fails them; the others are
        # partial when their picture fails (their audio falls back to local speech).
        task_id = await front.start_batch(words(100, audio_every=2))
        task = await front.follow(task_id)

        assert task["status"] == "completed"
        assert task["total_words"] == 100
        assert [r["word"] for r in task["results"]] == [f"word{n:03d}" for n in range(100)]
        assert {r["status"] for r in task["results"]} <= {"completed", "partial", "failed"}
        failed = [r for r in task["results"] if r["status"] == "failed"]
        partial = [r for r in task["results"] if r["status"] == "partial"]
        assert failed or partial  # 10 % of 100 pictures failed
        assert task["failed_words"] == len(failed)
        assert task["partial_words"] == len(partial)
        assert task["completed_words"] == 100 - len(failed)
        for result in failed + partial:
            assert result["error"].startswith("image: " if result in partial else "no medium")
            assert "genapi/z-image" in result["error"]
            assert "simulated generation failure" in result["error"]
        for result in partial:
            assert result["media"]["image"]["status"] == "failed"
            audio = await front.load(result["audio_url"])
            assert audio.status_code == 200
            assert audio.content.startswith(b"RIFF")
        done = next(r for r in task["results"] if r["status"] == "completed")
        picture = await front.load(done["image_url"])
        assert picture.status_code == 200
        assert picture.headers["content-type"] == "image/png"
        assert picture.content.startswith(b"\x89PNG")
        assert front.badges[-1] == "Генерация: 100/100"
        assert set(front.pauses) == {2.0}

        # Another batch, cancelled as soon as it started: it ends at once, nothing is lost.
        other = await front.start_batch(words(200, prefix="other"))
        cancelled = await front.cancel(other)
        assert cancelled["status"] == "cancelled"
        assert cancelled["cancelled_words"] > 0
        ended = await front.follow(other)
        assert ended["status"] == "cancelled"
        settled = ended["completed_words"] + ended["failed_words"] + ended["cancelled_words"]
        assert settled == 200
        assert ended["progress"] == 100
        for result in ended["results"]:
            if result["status"] == "completed":
                assert (await front.load(result["image_url"])).status_code == 200

        # The provider recovers; retry makes only what is missing.
        stack.sim.update_config({"failure_rate": 0.0})
        speech_before = submissions(stack, "openai", SPEECH_MODEL)
        pictures_before = submissions(stack, "genapi", ZIMAGE)
        retried = await front.retry(task_id)
        assert retried["retried_words"] == len(failed) + len(partial)
        assert retried["status"] == "processing"
        assert retried["progress"] == 100  # retried words stay counted: never backwards
        again = await front.follow(task_id)
        assert again["status"] == "completed"
        assert again["failed_words"] == again["partial_words"] == 0
        assert again["completed_words"] == 100
        assert {r["status"] for r in again["results"]} == {"completed"}
        assert submissions(stack, "genapi", ZIMAGE) - pictures_before == len(failed + partial)
        assert submissions(stack, "openai", SPEECH_MODEL) == speech_before
        redone = by_word(again)
        for result in partial:
            # The audio made the first time is the audio now.
            assert redone[result["word"]]["media"]["audio"] == result["media"]["audio"]
        assert ascending(front.progress)


async def test_cancel_stops_provider_work_and_what_was_made_is_kept(
    start_stack: StartStack,
) -> None:
    clock = ManualClock()  # moves only when this test says so
    async with start_stack(clock=clock) as stack:
        front = FrontEnd(stack.base_url)
        task_id = await front.start_batch(words(6))
        # Every picture is submitted and waiting for its first poll; the audio is made.
        await until(lambda: submissions(stack, "genapi", ZIMAGE) == 6 and clock.sleepers >= 6)
        await until(lambda: submissions(stack, "openai", SPEECH_MODEL) == 6)

        cancelled = await front.cancel(task_id)
        assert cancelled["status"] == "cancelled"
        assert cancelled["cancelled_words"] == 6
        assert {r["status"] for r in cancelled["results"]} == {"cancelled"}

        clock.advance(5)  # the polls wake, see the cancellation and stop
        await until(lambda: clock.sleepers == 0)
        polls = dict(stack.sim.counters()["polls"])
        clock.advance(600)
        await asyncio.sleep(0.2)
        assert dict(stack.sim.counters()["polls"]) == polls
        assert submissions(stack, "genapi", ZIMAGE) == 6
        async with stack.runtime.db.read() as conn:
            statuses = sorted(
                (row.step, row.status)
                for row in await conn.execute(select(step_runs.c.step, step_runs.c.status))
            )
        assert statuses == [("audio", "succeeded")] * 6 + [("image", "cancelled")] * 6

        # What was made stays: the same words' audio now costs no provider call.
        again = await front.start_batch(
            [{**w, "generate_image": False} for w in words(6)], skip_existing=True
        )
        task = await front.follow(again)
        assert task["status"] == "completed"
        assert all(r["reused"] is True for r in task["results"])
        assert submissions(stack, "openai", SPEECH_MODEL) == 6


async def test_one_word_is_answered_in_the_call_or_becomes_a_task_to_poll(
    start_stack: StartStack,
) -> None:
    clock = ManualClock()
    async with start_stack(
        clock=clock,
        sim={"models": {"genapi/z-image": {"latency_min": 100, "latency_max": 100}}},
        media_sync_wait=5,
    ) as stack:
        front = FrontEnd(stack.base_url, await key_for(stack, "alice"), scheme="Bearer")
        spoken = await front.call(
            "POST", "/api/media/generate-audio/", json={"word": "кошка", "language": "ru"}
        )
        assert spoken.status_code == 200, spoken.text
        body = spoken.json()
        assert body == {
            "word": "кошка",
            "language": "ru",
            "kind": "audio",
            "status": "completed",
            "url": body["url"],
            "asset_id": body["asset_id"],
            "model": "openai/speech",
            "reused": False,
            "mime_type": "audio/wav",
        }
        assert (await front.load(body["url"])).content.startswith(b"RIFF")

        # A picture that takes 100 s: the call gives up after 5 s with the task.
        drawing = asyncio.create_task(
            front.call("POST", "/api/media/generate-image/", json={"word": "cat"})
        )
        await until(lambda: submissions(stack, "genapi", ZIMAGE) == 1 and clock.sleepers >= 1)
        clock.advance(6)
        accepted = await drawing
        assert accepted.status_code == 202, accepted.text
        waiting = accepted.json()
        assert waiting["status"] == "processing"
        assert waiting["progress"] == 0
        assert accepted.headers["location"] == f"/api/media/tasks/{waiting['task_id']}/"
        for _ in range(60):
            task = await front.task(waiting["task_id"])
            if task["status"] == "completed":
                break
            clock.advance(5)
            await asyncio.sleep(0.05)
        [result] = task["results"]
        assert result["status"] == "completed"
        assert "audio_url" not in result
        assert result["media"]["image"]["model"] == "genapi/z-image"
        assert (await front.load(result["image_url"])).content.startswith(b"\x89PNG")

        # A client that gives up (a closed tab) stops nothing: the word is made all the same.
        async with httpx.AsyncClient(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {front.token}"}
        ) as impatient:
            with pytest.raises(httpx.ReadTimeout):
                await impatient.post(
                    "/api/media/generate-image/", json={"word": "owl"}, timeout=0.5
                )
        await until(lambda: submissions(stack, "genapi", ZIMAGE) == 2)
        for _ in range(60):
            listed = (await front.call("GET", "/api/media/tasks/")).json()["results"]
            if all(t["status"] == "completed" for t in listed):
                break
            clock.advance(5)
            await asyncio.sleep(0.05)
        assert [t["status"] for t in listed] == ["completed"] * 3


async def test_a_failed_word_says_why_and_the_chain_falls_back_first(
    start_stack: StartStack,
) -> None:
    clock = ManualClock(sleep_advances=True)
    async with start_stack(
        clock=clock, sim={"models": {"genapi/z-image": {"failure_rate": 1.0}}}
    ) as stack:
        front = FrontEnd(stack.base_url)
        drawn = await front.call("POST", "/api/media/generate-image/", json={"word": "house"})
        assert drawn.status_code == 200, drawn.text
        assert drawn.json()["model"] == "openai/image"
        task_id = await front.start_batch([{"word": "tree", "generate_audio": False}])
        [tree] = (await front.follow(task_id))["results"]
        assert tree["media"]["image"]["model"] == "openai/image"
        [reason] = tree["media"]["image"]["fallback_from"]
        assert reason.startswith("genapi/z-image: ")
        assert reason.endswith("simulated generation failure")

    async with start_stack(
        clock=ManualClock(sleep_advances=True),
        sim={"models": {"genapi/z-image": {"failure_rate": 1.0}}},
        media_image_models=["genapi/z-image"],
    ) as stack:
        front = FrontEnd(stack.base_url)
        refused = await front.call("POST", "/api/media/generate-image/", json={"word": "house"})
        assert refused.status_code == 502
        error = refused.json()
        assert error["error"] == "GENERATION_FAILED"
        assert error["code"] == 502
        assert "genapi/z-image" in error["message"]
        assert "simulated generation failure" in error["message"]
        task = await front.task(error["task_id"])
        assert task["status"] == "failed"
        assert task["failed_words"] == 1


async def test_skip_existing_reuses_what_this_user_made_with_no_provider_call(
    start_stack: StartStack,
) -> None:
    clock = ManualClock(sleep_advances=True)
    async with start_stack(clock=clock) as stack:
        alice = FrontEnd(stack.base_url, await key_for(stack, "alice"), pause=clock_pace(clock))
        bob = FrontEnd(stack.base_url, await key_for(stack, "bob"), pause=clock_pace(clock))
        first = await alice.follow(await alice.start_batch([{"word": "cat"}, {"word": "dog"}]))
        pictures = submissions(stack, "genapi", ZIMAGE)
        speech = submissions(stack, "openai", SPEECH_MODEL)
        assert (pictures, speech) == (2, 2)

        second = await alice.follow(
            await alice.start_batch(
                [
                    {"word": "cat"},
                    {"word": "dog", "image_prompt": "a dog asleep on a red sofa"},
                    {"word": "fox"},
                ],
                skip_existing=True,
            )
        )
        results = by_word(second)
        assert results["cat"]["reused"] is True
        assert results["cat"]["media"]["image"]["reused"] is True
        assert results["dog"]["reused"] is False  # another prompt is another picture
        assert results["dog"]["media"]["audio"]["reused"] is True
        assert results["fox"]["reused"] is False
        assert submissions(stack, "genapi", ZIMAGE) == pictures + 2
        assert submissions(stack, "openai", SPEECH_MODEL) == speech + 1
        cat_before = by_word(first)["cat"]
        reused = await alice.load(results["cat"]["image_url"])
        assert reused.content == (await alice.load(cat_before["image_url"])).content
        assert (
            results["cat"]["media"]["image"]["asset_id"]
            != (cat_before["media"]["image"]["asset_id"])
        )

        # Without the flag, or for another user, the word is made again.
        await alice.follow(await alice.start_batch([{"word": "cat"}]))
        await bob.follow(await bob.start_batch([{"word": "cat"}], skip_existing=True))
        assert submissions(stack, "genapi", ZIMAGE) == pictures + 4
        assert submissions(stack, "openai", SPEECH_MODEL) == speech + 3


async def test_users_see_only_their_own_tasks_and_files(start_stack: StartStack) -> None:
    clock = ManualClock(sleep_advances=True)
    async with start_stack(clock=clock) as stack:
        alice_key = await key_for(stack, "alice")
        alice = FrontEnd(stack.base_url, alice_key, pause=clock_pace(clock))
        bob = FrontEnd(stack.base_url, await key_for(stack, "bob"))
        task_ids = [await alice.start_batch([{"word": f"w{n}"}]) for n in range(3)]
        task = await alice.follow(task_ids[0])
        asset_id = task["results"][0]["media"]["image"]["asset_id"]

        for method, path in [
            ("GET", f"/api/media/tasks/{task_ids[0]}/"),
            ("DELETE", f"/api/media/tasks/{task_ids[0]}/"),
            ("POST", f"/api/media/tasks/{task_ids[0]}/retry/"),
            ("GET", f"/api/media/files/{asset_id}/"),
        ]:
            answer = await bob.call(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["code"] == 404
        assert (await bob.call("GET", "/api/media/tasks/")).json()["results"] == []
        # The owner reads a file with the key alone; Bearer works as Token does.
        own = await FrontEnd(stack.base_url, alice_key, scheme="Bearer").call(
            "GET", f"/api/media/files/{asset_id}/"
        )
        assert own.status_code == 200
        assert own.content.startswith(b"\x89PNG")

        page = (await alice.call("GET", "/api/media/tasks/", params={"limit": 2})).json()
        assert len(page["results"]) == 2
        assert page["previous"] is None
        rest = (await alice.call("GET", page["next"])).json()
        listed = [t["task_id"] for t in page["results"] + rest["results"]]
        assert sorted(listed) == sorted(task_ids)
        assert rest["next"] is None
        assert rest["previous"] is not None
        assert set(rest["results"][0]) == {
            "task_id",
            "status",
            "progress",
            "total_words",
            "completed_words",
            "failed_words",
            "cancelled_words",
            "created_at",
            "updated_at",
        }

        # Django's trailing slashes: a path without one is sent to the one with it.
        moved = await stack.http.get(
            "/api/media/tasks", headers={"Authorization": f"Token {alice_key}"}
        )
        assert moved.status_code == 307
        assert moved.headers["location"].endswith("/api/media/tasks/")

        for header in ({}, {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Token"}):
            refused = await stack.http.get("/api/media/tasks/", headers=header)
            assert refused.status_code == 401, header
        wrong = await stack.http.get("/api/media/tasks/", headers={"Authorization": "Token nope"})
        assert wrong.status_code == 401
        assert wrong.json()["message"] == "invalid or revoked API key"


async def test_file_links_load_without_a_key_until_they_expire(start_stack: StartStack) -> None:
    clock = ManualClock(sleep_advances=True)
    async with start_stack(
        clock=clock, public_url="https://cards.example.org/conveyor", media_link_ttl=3600
    ) as stack:
        front = FrontEnd(stack.base_url, pause=clock_pace(clock))
        answer = await front.call("POST", "/api/media/generate-audio/", json={"word": "sun"})
        url = answer.json()["url"]
        prefix = "https://cards.example.org/conveyor/api/media/files/"
        assert url.startswith(prefix)
        local = url.replace("https://cards.example.org/conveyor", stack.base_url)
        assert (await front.load(local)).status_code == 200
        # The same link on every poll: the browser keeps its cached copy.
        again = await front.call("POST", "/api/media/generate-audio/", json={"word": "moon"})
        assert again.json()["url"].split("expires=")[1][:10] == url.split("expires=")[1][:10]

        tampered = local[:-1] + ("0" if local[-1] != "0" else "1")
        assert (await front.load(tampered)).status_code == 403
        other_file = local.replace(answer.json()["asset_id"], again.json()["asset_id"])
        assert (await front.load(other_file)).status_code == 403
        clock.advance(3 * 3600)
        expired = await front.load(local)
        assert expired.status_code == 403
        assert expired.json()["error"] == "INVALID_LINK"


async def test_bad_words_are_named_by_index_and_nothing_is_created(
    start_stack: StartStack,
) -> None:
    async with start_stack(max_items_per_job=5) as stack:
        front = FrontEnd(stack.base_url)

        async def refused(body: Any, path: str = "/api/media/generate-batch/") -> dict[str, Any]:
            answer = await front.call("POST", path, json=body)
            assert answer.status_code == 400, answer.text
            error = dict(answer.json())
            assert error["error"] == "VALIDATION_ERROR"
            assert error["code"] == 400
            return error

        assert (await refused({"words": []}))["details"] == {
            "words": ["This list may not be empty."]
        }
        assert (await refused({}))["details"] == {"words": ["This field is required."]}
        too_many = await refused({"words": [{"word": "a"}] * 6})
        assert too_many["details"] == {"words": ["Ensure this field has no more than 5 elements."]}
        mixed = await refused(
            {
                "words": [
                    {"word": "fine"},
                    {"word": "   "},
                    {"word": "x" * 201},
                    {"word": "ok", "language": "klingon"},
                    {"word": "none", "generate_image": False, "generate_audio": False},
                ],
                "skip_existing": "yes",
            }
        )
        problems = mixed["details"]
        assert problems["skip_existing"] == ["Must be a valid boolean."]
        assert set(problems["words"]) == {"1", "2", "3", "4"}
        assert problems["words"]["1"] == {"word": ["the word is empty"]}
        assert "200 characters" in problems["words"]["2"]["word"][0]
        assert "klingon" in problems["words"]["3"]["language"][0]
        assert "both false" in problems["words"]["4"]["non_field_errors"][0]
        assert mixed["message"] == "4 of 5 words are invalid; words[1].word: the word is empty"
        single = await refused({"language": "en"}, "/api/media/generate-image/")
        assert single["details"] == {"word": ["This field is required."]}
        voice = await refused({"word": "a", "voice": "../x"}, "/api/media/generate-audio/")
        assert set(voice["details"]) == {"voice"}
        broken = await front.call(
            "POST",
            "/api/media/generate-batch/",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 400
        assert broken.json()["error"] == "PARSE_ERROR"

        assert (await front.call("GET", "/api/media/tasks/")).json()["results"] == []
        async with stack.runtime.db.read() as conn:
            assert list(await conn.execute(select(step_runs.c.id))) == []
        missing = await front.call("GET", "/api/media/tasks/not-a-task/")
        assert missing.status_code == 404
        assert missing.json()["error"] == "TASK_NOT_FOUND"
        nothing = await front.call("POST", "/api/media/tasks/not-a-task/retry/")
        assert nothing.status_code == 404
