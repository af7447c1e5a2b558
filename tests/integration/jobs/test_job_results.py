"""What a finished job says about its results (issue 14), on SQLite and PostgreSQL: every
output of a multi-output model kept and charged as stored, unknown prices as null with
their currency, a ``wait`` answer that carries the results with a URL per file, failed
items summed up at a glance, cancelled items retried. Models are the shipped specs driven
against the simulator over real HTTP, or scripted models where only the engine matters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from conveyor.providers.base import Checkpoint, ModelCall, ModelOutput, ProviderState
from conveyor.providers.errors import ProviderCancelled
from conveyor.sim import SimConfig, start_simulator
from tests.integration.conftest import Serve
from tests.support.adapters import PollingModel, ScriptedModel


async def _until(check: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def _download(url: str) -> httpx.Response:
    # No API key: the URL itself is the credential.
    async with httpx.AsyncClient(timeout=10) as anonymous:
        return await anonymous.get(url)


@pytest.mark.parametrize(
    ("output_shape", "stored"),
    [("list", 2), ("string", 1)],
    ids=["both-outputs-returned", "provider-returned-one"],
)
async def test_flux_schnell_keeps_every_output_and_charges_per_stored_file(
    serve: Serve, output_shape: str, stored: int
) -> None:
    config = SimConfig(latency_scale=0.0, replicate_output=output_shape)  # type: ignore[arg-type]
    async with (
        await start_simulator(config) as sim,
        serve(simulate=True, simulator_url=sim.base_url) as client,
    ):
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "replicate/flux-schnell",
                "items": [{"prompt": "two red cubes", "num_outputs": 2}],
                "wait": 60,
            },
        )
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["status"] == "completed", job
        [listed] = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
        assert len(listed["output"]["files"]) == stored
        # What was charged is what was kept: $0.003 per stored image, in dollars.
        assert job["cost"] == pytest.approx(0.003 * stored)
        assert listed["cost"] == pytest.approx(0.003 * stored)
        assert job["cost_currency"] == "USD"
        assert listed["cost_currency"] == "USD"
        [item] = job["items"]
        files = item["output"]["files"]
        for file in files:
            got = await _download(file["url"])
            assert got.status_code == 200
            assert got.content[:8] == b"\x89PNG\r\n\x1a\n"
            assert len(got.content) == file["size"]
        assert len({f["asset_id"] for f in files}) == stored
        # The results endpoint tells the same.
        results = (await client.get(f"/v1/jobs/{job['id']}/results")).json()
        assert [f["asset_id"] for f in results["items"][0]["output"]["files"]] == [
            f["asset_id"] for f in files
        ]
        assert all(f["url"] for f in results["items"][0]["output"]["files"])


async def test_unknown_price_is_null_and_free_work_is_zero_with_a_currency(serve: Serve) -> None:
    async with (
        await start_simulator(SimConfig(latency_scale=0.0)) as sim,
        serve(simulate=True, simulator_url=sim.base_url) as client,
    ):
        # gen-api publishes no price for z-image: nobody knows what it cost.
        unpriced = (
            await client.post(
                "/v1/jobs",
                json={"model": "genapi/z-image", "items": [{"prompt": "a cube"}], "wait": 60},
            )
        ).json()
        assert unpriced["status"] == "completed", unpriced
        assert unpriced["cost"] is None
        assert unpriced["cost_currency"] is None
        assert unpriced["items"][0]["cost"] is None
        listed = (await client.get("/v1/jobs")).json()["data"]
        assert [j["cost"] for j in listed if j["id"] == unpriced["id"]] == [None]
        # Local engines are known to be free.
        upload = await client.post("/v1/assets", files={"file": ("p.png", _png(), "image/png")})
        free = (
            await client.post(
                "/v1/jobs",
                json={
                    "recipe": "image-finish",
                    "items": [{"image": {"asset_id": upload.json()["id"]}}],
                    "wait": 60,
                },
            )
        ).json()
        assert free["status"] == "completed", free
        assert free["cost"] == 0.0
        assert free["cost_currency"] == "USD"


async def test_a_wait_answer_carries_every_result_with_urls(serve: Serve) -> None:
    async with serve(ScriptedModel()) as client:
        job = (
            await client.post(
                "/v1/jobs",
                json={"model": "test/echo", "items": [{"text": "a"}, {"text": "b"}], "wait": 20},
            )
        ).json()
        assert [i["output"]["text"] for i in job["items"]] == ["echo a", "echo b"]
        contents = [(await _download(i["output"]["files"][0]["url"])).content for i in job["items"]]
        assert contents == [b"test/echo:a", b"test/echo:b"]
        document = (await client.get(f"/v1/jobs/{job['id']}/download")).json()
        assert [
            (await _download(i["output"]["files"][0]["url"])).content for i in document["items"]
        ] == contents
        # Without wait the answer is the job alone, as before.
        plain = (
            await client.post("/v1/jobs", json={"model": "test/echo", "items": [{"text": "c"}]})
        ).json()
        assert plain["items"] is None


async def test_partly_failed_job_sums_up_its_errors_and_stays_completed(serve: Serve) -> None:
    async with serve(ScriptedModel(broken={"x", "y"})) as client:
        job = (
            await client.post(
                "/v1/jobs",
                json={
                    "model": "test/echo",
                    "items": [{"text": t} for t in ("ok", "x", "x", "y", "fine")],
                    "wait": 20,
                },
            )
        ).json()
        # The SPEC's rule: some items failed, the job is completed.
        assert job["status"] == "completed"
        summary = job["error_summary"]
        assert summary["failed"] == 3
        assert summary["total"] == 5
        assert summary["message"].startswith("3 of 5 item(s) failed: ")
        assert [(r["count"], r["code"]) for r in summary["reasons"]] == [
            (2, "STEP_FAILED"),
            (1, "STEP_FAILED"),
        ]
        assert "'x'" in summary["reasons"][0]["message"]
        again = (await client.get(f"/v1/jobs/{job['id']}")).json()
        assert again["error_summary"] == summary
        listed = (await client.get("/v1/jobs")).json()["data"]
        assert [j["error_summary"] for j in listed if j["id"] == job["id"]] == [summary]
        results = (await client.get(f"/v1/jobs/{job['id']}/results")).json()
        assert results["job"]["error_summary"] == summary
        clean = (
            await client.post(
                "/v1/jobs", json={"model": "test/echo", "items": [{"text": "a"}], "wait": 20}
            )
        ).json()
        assert clean["error_summary"] is None


async def test_the_webhook_body_carries_the_error_summary(serve: Serve) -> None:
    bodies: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with serve(ScriptedModel(broken={"x"})) as client:
            await client.post(
                "/v1/jobs",
                json={
                    "model": "test/echo",
                    "items": [{"text": "ok"}, {"text": "x"}],
                    "webhook_url": f"http://127.0.0.1:{port}/hook",
                },
            )
            await _until(lambda: bool(bodies), timeout=20)
    finally:
        await runner.cleanup()
    summary = bodies[0]["job"]["error_summary"]
    assert bodies[0]["job"]["status"] == "completed"
    assert summary["failed"] == 1
    assert [(r["count"], r["code"]) for r in summary["reasons"]] == [(1, "STEP_FAILED")]


@dataclass
class SlowToStopModel(PollingModel):
    """Polls like ``PollingModel``, but a cancelled call holds until ``release`` is set: the
    run of a cancelled item is still winding down when the retry comes."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        task_id = f"task-{len(self.submitted) + 1}"
        self.submitted.append(task_id)
        await checkpoint(ProviderState(task_id, {}))
        while not (self.finish_all or task_id in self.finish):
            if call.is_cancelled():
                self.cancelled.append(task_id)
                await self.release.wait()
                raise ProviderCancelled("job cancelled")
            await asyncio.sleep(self.poll_interval)
        stored = await call.files.store(b"\x89PNG\r\n\x1a\n" + task_id.encode())
        return ModelOutput(files=[stored])


async def test_cancelled_items_can_be_retried(serve: Serve) -> None:
    model = SlowToStopModel(finish={"task-1"})
    async with serve(model, worker_concurrency=1) as client:
        job = (
            await client.post(
                "/v1/jobs", json={"model": "test/poll", "items": [{"n": 1}, {"n": 2}, {"n": 3}]}
            )
        ).json()
        await _until(lambda: len(model.submitted) >= 2)
        await client.post(f"/v1/jobs/{job['id']}/cancel")
        await _until(lambda: model.cancelled == ["task-2"])
        # The cancelled run of item 2 has not ended yet: the retry reopens the item under it.
        model.finish_all = True
        retry = await client.post(f"/v1/jobs/{job['id']}/retry")
        assert retry.status_code == 200, retry.text
        assert retry.json()["retried"] == 2
        assert retry.json()["job"]["status"] == "processing"
        assert retry.json()["job"]["progress"]["cancelled"] == 0
        model.release.set()

        async def finished() -> dict[str, Any]:
            while True:
                now = (await client.get(f"/v1/jobs/{job['id']}")).json()
                if now["status"] not in ("pending", "processing"):
                    return now
                await asyncio.sleep(0.05)

        async with asyncio.timeout(15):
            final = await finished()
        items = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
        # The old run ending late closed nothing: every item is the new runs' result.
        assert final["status"] == "completed"
        assert final["progress"]["completed"] == 3
        assert final["progress"]["cancelled"] == 0
        assert [i["status"] for i in items] == ["completed"] * 3
        nothing = await client.post(f"/v1/jobs/{job['id']}/retry")
        assert nothing.status_code == 409


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()
