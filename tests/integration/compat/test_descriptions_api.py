"""Seed 000's clients against a live Conveyor: sync, batches with polling, errors, management.

Every test runs on SQLite and PostgreSQL, with the simulator as the vision and translation
provider and photos served by a local image server (see ``descriptions_stack``).
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from conveyor.compat.descriptions.signing import signed_headers
from conveyor.core.clock import ManualClock
from tests.integration.compat.descriptions_stack import (
    KEYS,
    TRANSLATE_MODEL,
    VISION_MODEL,
    StartStack,
    until,
)
from tests.integration.compat.seed_client import SeedClient, SeedClientError, lot

ALLOWED_TAG = re.compile(r"</?(p|ul|li|b|i|br)>")


def only_allowed_tags(html: str) -> bool:
    return all(ALLOWED_TAG.fullmatch(tag) for tag in re.findall(r"<[^>]*>", html))


async def test_one_lot_in_three_languages_is_answered_in_the_same_call(
    start_stack: StartStack,
) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        result = await client.sync_generate(
            "car-12345",
            [stack.images.url("img/front.jpg"), stack.images.url("img/side.jpg")],
            additional_info="2021 BMW X5, front damage",
            languages=["en", "ru", "de"],
        )

        assert result["version"] == "1.0.0"
        assert result["warnings"] == ["processing 3 languages may increase response time"]
        [answer] = result["lots"]
        assert answer["lot_id"] == "car-12345"
        by_language = {d["language"]: d["damages"] for d in answer["descriptions"]}
        assert [d["language"] for d in answer["descriptions"]] == ["en", "ru", "de"]
        english = by_language["en"]
        assert "based on 2 images" in english
        assert "2021 BMW X5, front damage" in english
        assert "[ru] " in by_language["ru"]
        assert "[de] " in by_language["de"]
        assert "[ru]" not in english
        assert all(only_allowed_tags(html) for html in by_language.values())
        # One description, one translation per language other than English.
        assert stack.counters() == {VISION_MODEL: 1, TRANSLATE_MODEL: 2}
        assert stack.images.hits == {"/img/front.jpg": 1, "/img/side.jpg": 1}


async def test_two_languages_or_fewer_carry_no_response_time_warning(
    start_stack: StartStack,
) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        result = await client.sync_generate(
            "car-1", [stack.images.url("img/a.jpg")], "2019 Tesla Model 3", ["en", "ru"]
        )
        assert result["warnings"] == []
        assert [d["language"] for d in result["lots"][0]["descriptions"]] == ["en", "ru"]


async def test_a_batch_is_polled_through_processing_and_translating_to_its_results(
    start_stack: StartStack, database_url: str
) -> None:
    clock = ManualClock()
    # Each call takes 10 s (vision) or 60 s (translation) of virtual time: the test holds
    # the job in each stage, and 60 s > 45 s shows batches have no translation budget.
    latencies = {
        f"openai/{VISION_MODEL}": {"latency_min": 10, "latency_max": 10},
        f"openai/{TRANSLATE_MODEL}": {"latency_min": 60, "latency_max": 60},
    }
    async with start_stack(clock=clock, sim={"models": latencies}) as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        cars = [
            lot("fleet-car-001", stack.images.url("img/bmw1.jpg"), info="2020 BMW X3"),
            lot(
                "fleet-car-002",
                stack.images.url("img/audi1.jpg"),
                stack.images.url("img/audi2.jpg"),
                info="2019 Audi A4, lease return",
            ),
        ]
        job_id = await client.create_batch_job(cars, languages=["en", "ru"])

        await until(lambda: clock.sleepers == 2)  # both lots are with the vision model
        status = await client.get_job_status(job_id)
        assert status["status"] == "processing"
        assert status["job_id"] == job_id
        assert status["languages"] == ["en", "ru"]
        assert status["progress"] == {
            "total_lots": 2,
            "processed_lots": 0,
            "failed_lots": 0,
            "completion_percentage": 0.0,
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", status["created_at"])
        assert "error_message" not in status
        assert await client.get_results(job_id) is None  # 202 while running

        clock.advance(10)
        await until(lambda: clock.sleepers == 2)  # both lots are now being translated
        assert (await client.get_job_status(job_id))["status"] == "translating"

        async def poll_sleep(seconds: float) -> None:
            clock.advance(seconds)
            await asyncio.sleep(0.02)

        results = await client.wait_for_completion(
            job_id, poll_interval=15, sleep=poll_sleep, clock=clock.timestamp
        )

        assert results is not None
        assert results["job_id"] == job_id
        assert results["status"] == "completed"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", results["completed_at"])
        lots = {entry["lot_id"]: entry for entry in results["results"]["lots"]}
        assert list(lots) == ["fleet-car-001", "fleet-car-002"]
        second = {d["language"]: d["damages"] for d in lots["fleet-car-002"]["descriptions"]}
        assert "based on 2 images" in second["en"]
        assert "lease return" in second["en"]
        assert second["ru"].count("[ru] ") >= 2  # translated, not the English fallback
        assert "warnings" not in lots["fleet-car-002"]
        assert client.seen[0] == ("translating", 0.0)
        assert client.seen[-1] == ("completed", 100.0)
        assert stack.counters() == {VISION_MODEL: 2, TRANSLATE_MODEL: 2}

        download = await stack.http.get(f"/api/v1/batch-results/{job_id}/download")
        assert download.status_code == 200
        assert download.headers["content-disposition"] == (
            f'attachment; filename="batch-results-{job_id}.json"'
        )
        assert download.json() == results


async def test_a_lot_without_usable_images_fails_alone(start_stack: StartStack) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        job_id = await client.create_batch_job(
            [
                lot("good", stack.images.url("img/ok.jpg")),
                lot("gone", stack.images.url("missing.jpg")),
            ],
            languages=["en", "de"],
        )
        results = await client.wait_for_completion(job_id, poll_interval=0.05)

        assert results is not None
        assert results["status"] == "completed"
        good, gone = results["results"]["lots"]
        assert good["status"] == "completed"
        assert len(good["descriptions"]) == 2
        assert gone == {
            "lot_id": "gone",
            "status": "failed",
            "descriptions": [],
            "error": gone["error"],
        }
        assert "no usable image in lot 'gone'" in gone["error"]
        assert "image 1" in gone["error"]
        # The image server is internal (an operator's exception): what answered there, a
        # 404 here, stays in the server log (docs/decisions.md).
        assert "could not fetch from 127.0.0.2" in gone["error"]
        assert "404" not in gone["error"]
        status = await client.get_job_status(job_id)
        assert status["progress"] == {
            "total_lots": 2,
            "processed_lots": 2,
            "failed_lots": 1,
            "completion_percentage": 100.0,
        }
        assert stack.counters() == {VISION_MODEL: 1, TRANSLATE_MODEL: 1}


async def test_a_job_whose_every_lot_failed_reports_why(start_stack: StartStack) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        job_id = await client.create_batch_job(
            [lot("a", stack.images.url("page.html")), lot("b", stack.images.url("missing.jpg"))]
        )
        with pytest.raises(SeedClientError, match="Job failed: all 2 lots failed") as failed:
            await client.wait_for_completion(job_id, poll_interval=0.05)
        assert "lot 'a': no usable image" in str(failed.value)
        assert "did not send an image (got text/html)" in str(failed.value)
        assert stack.counters() == {}


async def test_bad_requests_get_clear_errors(start_stack: StartStack) -> None:
    async with start_stack(max_json_body_bytes=64 * 1024) as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        image = {"url": stack.images.url("img/a.jpg")}

        async def post(lots: object, **fields: object) -> httpx.Response:
            payload = {
                "signature": client.generate_signature(lots),  # type: ignore[arg-type]
                "version": "1.0.0",
                "languages": ["en"],
                "lots": lots,
                **fields,
            }
            return await client.post_payload(payload)

        async def expect(response: httpx.Response, status: int, code: str, *words: str) -> None:
            body = response.json()
            assert response.status_code == status, body
            assert body["error"] == code, body
            assert body["code"] == status
            for word in words:
                assert word in body["message"], body

        one = [{"lot_id": "x", "images": [image]}]
        await expect(await post(one, version="2.0.0"), 400, "UNSUPPORTED_VERSION", "2.0.0")
        await expect(await post([{"lot_id": " ", "images": [image]}]), 400, "EMPTY_LOT_ID")
        await expect(
            await post([{"lot_id": "d", "images": [image]}, {"lot_id": "d", "images": [image]}]),
            400,
            "DUPLICATE_LOT_ID",
            "'d' appears 2 times",
        )
        await expect(
            await post([{"lot_id": "many", "images": [image] * 21}]),
            400,
            "TOO_MANY_IMAGES",
            "21 images",
            "at most 20",
        )
        await expect(
            await post([{"lot_id": "f", "images": [{"url": "file:///etc/passwd"}]}]),
            400,
            "INVALID_IMAGE_URL",
            "lot 'f' image 1",
            "not file:",
        )
        await expect(
            await post([{"lot_id": "g", "images": [{"url": "ftp://example.com/a.jpg"}]}]),
            400,
            "INVALID_IMAGE_URL",
            "not ftp:",
        )
        await expect(await post([{"lot_id": "e", "images": []}]), 400, "NO_IMAGES", "lot 'e'")
        await expect(
            await post(one, languages=["en", "xx", "klingon"]),
            400,
            "UNKNOWN_LANGUAGE",
            "'xx'",
            "'klingon'",
        )
        await expect(await post(one, languages="en"), 400, "INVALID_LANGUAGES")
        await expect(await post([]), 400, "INVALID_LOTS", "non-empty")
        mixed = await post([{"lot_id": "", "images": [image]}, {"lot_id": "z", "images": []}])
        await expect(mixed, 400, "INVALID_LOTS", "2 problems")
        assert [p["lot"] for p in mixed.json()["details"]["problems"]] == [0, 1]

        not_json = await stack.http.post(
            "/api/v1/generate-descriptions",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        await expect(not_json, 400, "INVALID_JSON")
        await expect(await client.post_payload(["a", "list"]), 400, "INVALID_REQUEST")
        huge = [{"lot_id": "big", "additional_info": "x" * 70_000, "images": [image]}]
        await expect(await post(huge), 413, "PAYLOAD_TOO_LARGE")

        # BCP-47 tags and case are accepted and normalised; empty languages mean English.
        ok = await post([*one, {"lot_id": "y", "images": [image]}], languages=["pt_br", "ZH-hans"])
        assert ok.status_code == 201
        status = await client.get_job_status(ok.json()["job_id"])
        assert status["languages"] == ["pt-BR", "zh-Hans"]
        empty = await post([{"lot_id": "q", "images": [image]}, *one], languages=[])
        assert (await client.get_job_status(empty.json()["job_id"]))["languages"] == ["en"]

        unknown = await stack.http.get("/api/v1/batch-status/no-such-job")
        await expect(unknown, 404, "JOB_NOT_FOUND")
        native = await stack.http.post(
            "/v1/jobs", json={"recipe": "vehicle-damage", "items": [one[0]]}
        )
        assert native.status_code == 201
        # A job of the native API is not this API's to show.
        hidden = await stack.http.get(f"/api/v1/batch-status/{native.json()['id']}")
        await expect(hidden, 404, "JOB_NOT_FOUND")


async def test_listing_and_cancelling_need_the_clients_signature(start_stack: StartStack) -> None:
    clock = ManualClock()
    slow = {f"openai/{VISION_MODEL}": {"latency_min": 30, "latency_max": 30}}
    async with start_stack(clock=clock, sim={"models": slow}) as stack:
        acme = SeedClient(stack.base_url, KEYS["acme"])
        image = stack.images.url("img/a.jpg")
        first = await acme.create_batch_job([lot("1", image), lot("2", image)])
        clock.advance(1)  # newest first: the second job is created a second later
        second = await acme.create_batch_job([lot("3", image), lot("4", image)])
        await until(lambda: clock.sleepers == 4)

        def signed(method: str, path: str, query: str = "", *, who: str = "acme") -> dict:
            return signed_headers(
                method, path, query, client=who, shared_key=KEYS[who], now=clock.timestamp
            )

        async def jobs(query: str = "", *, who: str = "acme") -> httpx.Response:
            path = "/api/v1/batch-jobs"
            return await stack.http.get(
                f"{path}?{query}" if query else path, headers=signed("GET", path, query, who=who)
            )

        unsigned = await stack.http.get("/api/v1/batch-jobs")
        assert unsigned.status_code == 403
        assert "X-Client, X-Timestamp, X-Signature" in unsigned.json()["message"]

        listed = (await jobs()).json()
        assert [j["job_id"] for j in listed["jobs"]] == [second, first]
        assert listed["has_more"] is False
        assert {j["status"] for j in listed["jobs"]} == {"processing"}
        page = (await jobs("limit=1&offset=1")).json()
        assert [j["job_id"] for j in page["jobs"]] == [first]
        assert (await jobs("status=completed")).json()["jobs"] == []
        assert (await jobs(who="globex")).json()["jobs"] == []  # every client sees its own

        forged = signed("GET", "/api/v1/batch-jobs", who="globex")
        forged["X-Client"] = "acme"
        refused = await stack.http.get("/api/v1/batch-jobs", headers=forged)
        assert refused.status_code == 403
        assert refused.json()["message"] == "signature does not match"
        tampered = await stack.http.get(
            "/api/v1/batch-jobs?limit=50", headers=signed("GET", "/api/v1/batch-jobs", "limit=5")
        )
        assert tampered.status_code == 403

        cancel_path = f"/api/v1/batch-jobs/{first}/cancel"
        other = await stack.http.post(
            cancel_path, headers=signed("POST", cancel_path, who="globex")
        )
        assert other.status_code == 404
        cancelled = await stack.http.post(cancel_path, headers=signed("POST", cancel_path))
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["error_message"] == "the job was cancelled"
        again = await stack.http.post(cancel_path, headers=signed("POST", cancel_path))
        assert again.status_code == 200
        assert again.json()["status"] == "cancelled"
        with pytest.raises(SeedClientError, match="Job cancelled: the job was cancelled"):
            await acme.wait_for_completion(first)
        results = await acme.get_results(first)
        assert results is not None
        assert results["status"] == "cancelled"
        assert {entry["status"] for entry in results["results"]["lots"]} == {"cancelled"}

        await until(lambda: clock.sleepers >= 2)
        clock.advance(30)
        done = await acme.wait_for_completion(second, poll_interval=0.05)
        assert done is not None
        assert done["status"] == "completed"
        finished_path = f"/api/v1/batch-jobs/{second}/cancel"
        late_cancel = await stack.http.post(finished_path, headers=signed("POST", finished_path))
        assert late_cancel.status_code == 409
        assert late_cancel.json()["error"] == "JOB_FINISHED"
        counts = json.loads((await jobs("status=completed")).text)
        assert [j["job_id"] for j in counts["jobs"]] == [second]

        stale = signed("GET", "/api/v1/batch-jobs")
        clock.advance(301)
        late = await stack.http.get("/api/v1/batch-jobs", headers=stale)
        assert late.status_code == 403
        assert "300 s" in late.json()["message"]
