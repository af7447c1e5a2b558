"""The native jobs API over real HTTP, on SQLite and PostgreSQL, with scripted models."""

from __future__ import annotations

import asyncio
import json

import httpx
from prometheus_client import REGISTRY

from conveyor.clients.service import ClientService
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from tests.integration.conftest import Serve
from tests.support.adapters import PollingModel, ScriptedModel


async def _finished(
    client: httpx.AsyncClient,
    job_id: str,
    timeout: float = 20,
    headers: dict[str, str] | None = None,
) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            job = (await client.get(f"/v1/jobs/{job_id}", headers=headers)).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                return job
            await asyncio.sleep(0.05)


async def test_wait_returns_the_finished_job_with_results(serve: Serve) -> None:
    model = ScriptedModel()
    async with serve(model) as client:
        response = await client.post(
            "/v1/jobs",
            json={"model": "test/echo", "items": [{"text": "a"}, {"text": "b"}], "wait": 20},
        )
        assert response.status_code == 200
        job = response.json()
        assert job["status"] == "completed"
        assert job["progress"] == {
            "total": 2,
            "completed": 2,
            "failed": 0,
            "cancelled": 0,
            "pending": 0,
            "percent": 100.0,
        }
        assert job["cost"] == 1.0
        results = (await client.get(f"/v1/jobs/{job['id']}/results")).json()
        outputs = [item["output"] for item in results["items"]]
        assert [o["text"] for o in outputs] == ["echo a", "echo b"]
        asset_id = outputs[0]["files"][0]["asset_id"]
        content = await client.get(f"/v1/assets/{asset_id}/content")
        assert content.content == b"test/echo:a"
    assert model.calls == {"a": 1, "b": 1}


async def test_metrics_count_claims_steps_and_items(serve: Serve) -> None:
    # Counters are per process and earlier tests ran here too: assert what this job added.
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    step_ok = {"model": "test/echo", "outcome": "succeeded"}
    step_failed = {"model": "test/echo", "outcome": "failed"}
    items_failed = {"recipe": "model", "status": "failed"}
    before = (
        sample("conveyor_step_seconds_count", **step_ok),
        sample("conveyor_step_seconds_count", **step_failed),
        sample("conveyor_items_finished_total", **items_failed),
        sample("conveyor_queue_claims_total"),
    )
    async with serve(ScriptedModel(broken={"x"})) as client:
        await client.post(
            "/v1/jobs",
            json={"model": "test/echo", "items": [{"text": "ok"}, {"text": "x"}], "wait": 20},
        )
        text = (await client.get("/metrics")).text
    after = (
        sample("conveyor_step_seconds_count", **step_ok),
        sample("conveyor_step_seconds_count", **step_failed),
        sample("conveyor_items_finished_total", **items_failed),
        sample("conveyor_queue_claims_total"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 2]
    assert 'conveyor_queue_tasks{status="queued"} 0.0' in text


async def test_without_wait_the_job_is_accepted_and_finishes_later(serve: Serve) -> None:
    async with serve(ScriptedModel(delay=0.05)) as client:
        response = await client.post(
            "/v1/jobs", json={"model": "test/echo", "items": [{"text": "x"}]}
        )
        assert response.status_code == 201
        assert response.json()["status"] in ("pending", "processing")
        job = await _finished(client, response.json()["id"])
        assert job["status"] == "completed"


async def test_idempotency_key_returns_the_same_job(serve: Serve) -> None:
    model = ScriptedModel()
    async with serve(model) as client:
        body = {"model": "test/echo", "items": [{"text": "once"}], "idempotency_key": "k-1"}
        first, second = await asyncio.gather(
            client.post("/v1/jobs", json=body), client.post("/v1/jobs", json=body)
        )
        # One request made the job (201), the other was answered with it (200).
        assert sorted([first.status_code, second.status_code]) == [200, 201]
        assert first.json()["id"] == second.json()["id"]
        await _finished(client, first.json()["id"])
        jobs = (await client.get("/v1/jobs")).json()["data"]
        assert len(jobs) == 1
    assert model.calls == {"once": 1}


async def _api_key(database_url: str, client: str) -> str:
    db = Database(database_url)
    try:
        key, _ = await ClientService(db, SystemClock()).create_key(client)
    finally:
        await db.dispose()
    return key


async def test_an_idempotency_key_is_per_client_and_a_repeat_answers_200(
    serve: Serve, database_url: str
) -> None:
    model = ScriptedModel()
    alice = {"Authorization": f"Bearer {await _api_key(database_url, 'alice')}"}
    bob = {"Authorization": f"Bearer {await _api_key(database_url, 'bob')}"}
    body = {"model": "test/echo", "items": [{"text": "mine"}], "idempotency_key": "order-7"}
    async with serve(model) as client:
        alices = await client.post("/v1/jobs", json=body, headers=alice)
        bobs = await client.post("/v1/jobs", json=body, headers=bob)
        assert (alices.status_code, bobs.status_code) == (201, 201)
        assert alices.json()["id"] != bobs.json()["id"]  # one key, two clients: two jobs

        again = await client.post("/v1/jobs", json=body, headers=alice)
        assert again.status_code == 200  # not created: the existing job is the answer
        assert again.json()["id"] == alices.json()["id"]
        bob_again = await client.post("/v1/jobs", json=body, headers=bob)
        assert bob_again.status_code == 200
        assert bob_again.json()["id"] == bobs.json()["id"]
        for job_id, headers in ((alices.json()["id"], alice), (bobs.json()["id"], bob)):
            assert (await _finished(client, job_id, headers=headers))["status"] == "completed"
    assert model.calls == {"mine": 2}


async def test_fallback_chain_records_why_the_first_model_failed(serve: Serve) -> None:
    primary = ScriptedModel(model_id="test/primary", broken={"p"})
    backup = ScriptedModel(model_id="test/backup")
    async with serve(primary, backup) as client:
        job = (
            await client.post(
                "/v1/jobs",
                json={
                    "model": "test/primary",
                    "options": {"fallbacks": ["test/backup"]},
                    "items": [{"text": "p"}],
                    "wait": 20,
                },
            )
        ).json()
        [item] = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
    assert item["status"] == "completed"
    assert item["model_used"] == "test/backup"
    [tried] = item["output"]["provenance"]["generate"]["fallback_from"]
    assert tried == {"model": "test/primary", "error": "test/primary refuses 'p'"}


async def test_partly_failed_job_is_completed_and_wholly_failed_job_is_failed(serve: Serve) -> None:
    async with serve(ScriptedModel(broken={"bad"})) as client:
        mixed = (
            await client.post(
                "/v1/jobs",
                json={"model": "test/echo", "items": [{"text": "ok"}, {"text": "bad"}], "wait": 20},
            )
        ).json()
        assert mixed["status"] == "completed"
        assert mixed["progress"]["failed"] == 1
        dead = (
            await client.post(
                "/v1/jobs", json={"model": "test/echo", "items": [{"text": "bad"}], "wait": 20}
            )
        ).json()
        assert dead["status"] == "failed"
        assert dead["error_message"] == "all 1 item(s) failed"
        [item] = (await client.get(f"/v1/jobs/{dead['id']}/items")).json()["data"]
        assert item["error_code"] == "STEP_FAILED"
        assert "refuses 'bad'" in item["error"]


async def test_transient_errors_are_retried_until_success(serve: Serve) -> None:
    model = ScriptedModel(flaky={"f": 2})
    async with serve(model) as client:
        job = (
            await client.post(
                "/v1/jobs", json={"model": "test/echo", "items": [{"text": "f"}], "wait": 20}
            )
        ).json()
    assert job["status"] == "completed"
    assert model.calls["f"] == 3


async def test_concurrent_retries_reopen_each_failed_item_once(serve: Serve) -> None:
    model = ScriptedModel(broken={"later"})
    async with serve(model) as client:
        job = (
            await client.post(
                "/v1/jobs",
                json={
                    "model": "test/echo",
                    "items": [{"text": "now"}, {"text": "later"}],
                    "wait": 20,
                },
            )
        ).json()
        model.broken.clear()
        answers = await asyncio.gather(
            *(client.post(f"/v1/jobs/{job['id']}/retry") for _ in range(4))
        )
        retried = sorted(a.json().get("retried", 0) for a in answers if a.status_code == 200)
        assert retried[-1] == 1
        assert sum(retried) == 1
        job = await _finished(client, job["id"])
    assert job["status"] == "completed"
    assert job["progress"] == {
        "total": 2,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
        "pending": 0,
        "percent": 100.0,
    }
    assert model.calls == {"now": 1, "later": 2}


async def test_retry_reruns_only_failed_items(serve: Serve) -> None:
    model = ScriptedModel(broken={"later"})
    async with serve(model) as client:
        job = (
            await client.post(
                "/v1/jobs",
                json={
                    "model": "test/echo",
                    "items": [{"text": "now"}, {"text": "later"}],
                    "wait": 20,
                },
            )
        ).json()
        assert job["progress"]["failed"] == 1
        model.broken.clear()
        retried = (await client.post(f"/v1/jobs/{job['id']}/retry")).json()
        assert retried["retried"] == 1
        job = await _finished(client, job["id"])
    assert job["status"] == "completed"
    assert job["progress"]["completed"] == 2
    assert model.calls == {"now": 1, "later": 2}


async def test_cancel_stops_polling_and_keeps_finished_results(serve: Serve) -> None:
    model = PollingModel(finish={"task-1"})
    async with serve(model, worker_concurrency=1) as client:
        job = (
            await client.post(
                "/v1/jobs",
                json={"model": "test/poll", "items": [{"n": 1}, {"n": 2}, {"n": 3}]},
            )
        ).json()
        async with asyncio.timeout(10):
            while len(model.submitted) < 2:
                await asyncio.sleep(0.02)
        cancelled = (await client.post(f"/v1/jobs/{job['id']}/cancel")).json()
        assert cancelled["status"] == "cancelled"
        async with asyncio.timeout(10):
            while not model.cancelled:
                await asyncio.sleep(0.02)
        items = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
        final = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert [i["status"] for i in items] == ["completed", "cancelled", "cancelled"]
    assert final["progress"]["completed"] == 1
    assert final["progress"]["cancelled"] == 2
    assert model.submitted == ["task-1", "task-2"]  # the third never started
    assert model.cancelled == ["task-2"]


async def test_progress_counts_are_exact_when_many_items_finish_at_once(serve: Serve) -> None:
    async with serve(ScriptedModel(), worker_concurrency=200) as client:
        job = (
            await client.post(
                "/v1/jobs",
                json={"model": "test/echo", "items": [{"text": str(i)} for i in range(150)]},
            )
        ).json()
        job = await _finished(client, job["id"], timeout=60)
    assert job["progress"]["completed"] == 150
    assert job["status"] == "completed"


async def test_events_stream_reports_items_and_the_end(serve: Serve) -> None:
    model = PollingModel()
    async with serve(model) as client:
        job = (
            await client.post(
                "/v1/jobs", json={"model": "test/poll", "items": [{"n": 1}, {"n": 2}]}
            )
        ).json()
        seen: list[tuple[str, dict]] = []
        async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
            event = None
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    seen.append((event or "", json.loads(line[6:])))
                    if event == "job":
                        model.finish_all = True
    kinds = [k for k, _ in seen]
    assert kinds[0] == "job"
    assert kinds.count("item.completed") == 2
    assert kinds[-1] == "finished"
    assert seen[-1][1]["status"] == "completed"


async def test_download_zip_holds_results_and_files(serve: Serve) -> None:
    import io
    import zipfile

    async with serve(ScriptedModel()) as client:
        job = (
            await client.post(
                "/v1/jobs", json={"model": "test/echo", "items": [{"text": "z"}], "wait": 20}
            )
        ).json()
        response = await client.get(f"/v1/jobs/{job['id']}/download", params={"format": "zip"})
        assert response.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        names = archive.namelist()
        assert names[0] == "results.json"
        assert json.loads(archive.read("results.json"))["job"]["id"] == job["id"]
        assert archive.read(names[1]) == b"test/echo:z"
        as_json = await client.get(f"/v1/jobs/{job['id']}/download")
        assert "attachment" in as_json.headers["content-disposition"]


async def test_events_of_an_unknown_job_answer_404_before_streaming(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        answer = await client.get("/v1/jobs/job_doesnotexist0000000000/events")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == "JOB_NOT_FOUND"
