"""``conveyor.client.descriptions`` against a live server: the seed's calls plus the signed ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conveyor.client.descriptions import (
    AsyncDescriptionsClient,
    DescriptionsClient,
    DescriptionsError,
    make_lot,
)
from tests.integration.compat.descriptions_stack import KEYS, StartStack


async def test_the_sync_client_does_what_the_seeds_clients_do(
    start_stack: StartStack, tmp_path: Path
) -> None:
    async with start_stack() as stack:
        image = stack.images.url("img/a.jpg")

        def scenario() -> tuple[dict, dict, dict, dict, bytes]:
            with DescriptionsClient(stack.base_url, KEYS["acme"], client_name="acme") as api:
                answer = api.sync_generate(
                    "car-1", [image], "2020 Toyota Camry", ["en", "ru", "de"]
                )
                job_id = api.create_batch_job(
                    [make_lot("car-2", [image]), make_lot("car-3", [image])], ["en", "es"]
                )
                seen: list[str] = []
                results = api.wait_for_completion(
                    job_id, poll_interval=0.05, on_status=lambda s: seen.append(s["status"])
                )
                listed = api.list_jobs(status="completed", limit=5)
                path = api.download_results(job_id, tmp_path / "results.json")
                with pytest.raises(DescriptionsError) as finished:
                    api.cancel_job(job_id)
                assert finished.value.status == 409
                assert seen[-1] == "completed"
                return answer, results, listed, {"job_id": job_id}, path.read_bytes()

        answer, results, listed, job, downloaded = await asyncio.to_thread(scenario)

        assert answer["warnings"] == ["processing 3 languages may increase response time"]
        assert [d["language"] for d in answer["lots"][0]["descriptions"]] == ["en", "ru", "de"]
        assert results["status"] == "completed"
        assert [entry["lot_id"] for entry in results["results"]["lots"]] == ["car-2", "car-3"]
        # Newest first: the batch, then the one-lot job of the sync call.
        assert listed["jobs"][0]["job_id"] == job["job_id"]
        assert [j["progress"]["total_lots"] for j in listed["jobs"]] == [2, 1]
        assert b'"car-3"' in downloaded


async def test_the_async_client_and_its_errors(start_stack: StartStack) -> None:
    async with start_stack() as stack:
        image = stack.images.url("img/a.jpg")
        async with AsyncDescriptionsClient(stack.base_url, KEYS["globex"]) as api:
            answer = await api.sync_generate("g-1", [image], languages=["en"])
            assert answer["lots"][0]["lot_id"] == "g-1"
            with pytest.raises(DescriptionsError, match="API Error: 400 - ") as bad:
                await api.generate([make_lot("x", ["file:///etc/shadow"])])
            assert bad.value.body["error"] == "INVALID_IMAGE_URL"
            with pytest.raises(ValueError, match="client_name"):
                await api.list_jobs()
            with pytest.raises(ValueError, match="two or more lots"):
                await api.create_batch_job([make_lot("solo", [image])])
        async with AsyncDescriptionsClient(stack.base_url, "wrong-key") as stranger:
            with pytest.raises(DescriptionsError, match="API Error: 403") as refused:
                await stranger.sync_generate("g-2", [image])
            assert refused.value.status == 403
