"""``model`` jobs are checked at submission against their models' declared inputs, on SQLite
and PostgreSQL, through the real app with the simulator standing in for the providers.

A refused request names each bad field by location and leaves nothing behind (no job, no
provider call); file inputs in lists reach a vision model; URLs a remote model would get must
be http(s) and pass the fetch policy; ``dry_run`` says what a job would cost and call.
"""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from PIL import Image

from conveyor.clients.service import LOCAL_CLIENT_NAME
from conveyor.jobs.service import JobSubmission
from conveyor.runtime import Runtime
from conveyor.sim import RunningSimulator, SimConfig, start_simulator
from tests.integration.conftest import Serve

# A loopback address of the simulator's own: in simulate mode the fetch policy allows it
# and nothing else private (this machine's name resolves to 127.0.0.1, which stays refused).
SIM_HOST = "127.0.0.3"


@asynccontextmanager
async def simulated(
    serve: Serve, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, RunningSimulator]]:
    async with (
        await start_simulator(SimConfig(latency_scale=0.0), SIM_HOST) as sim,
        serve(simulate=True, simulator_url=sim.base_url, **overrides) as client,
    ):
        yield client, sim


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def errors_of(answer: httpx.Response) -> dict[str, str]:
    body = answer.json()
    assert body["code"] == answer.status_code
    return {e["loc"]: e["msg"] for e in body["details"]["errors"]}


async def no_jobs(client: httpx.AsyncClient) -> None:
    listed = await client.get("/v1/jobs")
    assert listed.status_code == 200
    assert listed.json()["data"] == []


async def test_bad_inputs_are_refused_naming_each_field(serve: Serve) -> None:
    async with simulated(serve) as (client, sim):
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "openai/speech",
                "items": [
                    {"text": "fine"},
                    {"voice": "alloy"},
                    {"text": 5},
                    {"text": "hello", "format": "ogg"},
                    {"text": "hello", "sped": 1.5},
                    {"text": "hello", "speed": "fast"},
                ],
            },
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "INVALID_INPUTS"
        errors = errors_of(answer)
        assert set(errors) == {
            "items[1].inputs.text",
            "items[2].inputs.text",
            "items[3].inputs.format",
            "items[4].inputs.sped",
            "items[5].inputs.speed",
        }
        assert errors["items[1].inputs.text"] == "required"
        assert errors["items[2].inputs.text"] == "must be a string, not an integer"
        assert "must be one of 'mp3', 'wav'" in errors["items[3].inputs.format"]
        assert "did you mean 'speed'?" in errors["items[4].inputs.sped"]
        assert errors["items[5].inputs.speed"] == "must be a number, not a string"
        assert answer.json()["message"].startswith("items[1].inputs.text: required (and 4 more)")
        await no_jobs(client)
        assert sim.counters()["submissions"] == {}


async def test_a_file_input_must_be_a_file_reference(serve: Serve) -> None:
    async with simulated(serve) as (client, _sim):
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "replicate/remove-background",
                "items": [{"image": "mug.jpg"}, {}, {"image": {"asset_id": 7}}],
            },
        )
        assert answer.status_code == 422, answer.text
        errors = errors_of(answer)
        assert errors["items[0].inputs.image"].startswith("must be a file")
        assert errors["items[1].inputs.image"] == "required"
        assert errors["items[2].inputs.image"].startswith("not a file")
        await no_jobs(client)


async def test_a_fallback_is_held_to_its_own_inputs(serve: Serve) -> None:
    async with simulated(serve) as (client, _sim):
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "openai/image",
                "options": {"fallbacks": ["openai/speech"]},
                "items": [{"prompt": "a red mug"}],
            },
        )
        assert answer.status_code == 422, answer.text
        assert errors_of(answer) == {"items[0].inputs.text": "required (by openai/speech)"}


async def test_urls_for_remote_models_must_pass_the_fetch_policy(serve: Serve) -> None:
    # The policy of a real deployment: nothing private but the simulator's own host.
    async with simulated(serve, allow_private_urls=False) as (client, sim):
        refused = [
            "file:///etc/passwd",
            "gopher://example.com/1",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/mug.jpg",
            "http://localhost/mug.jpg",
            "data:image/png;base64,AAAA",
        ]
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "replicate/remove-background",
                "items": [{"image": {"url": url}} for url in refused],
            },
        )
        assert answer.status_code == 422, answer.text
        errors = errors_of(answer)
        assert set(errors) == {f"items[{i}].inputs.image" for i in range(len(refused))}
        assert all(msg.startswith("URL refused:") for msg in errors.values()), errors
        assert "file: URLs" in errors["items[0].inputs.image"]
        assert "link-local" in errors["items[2].inputs.image"]
        # A name is looked up as a fetch would: this machine's resolves to 127.0.0.1.
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "replicate/remove-background",
                "items": [
                    {"image": {"url": f"{sim.base_url}/fine.png"}},
                    {"image": {"url": f"http://{socket.gethostname()}/mug.jpg"}},
                ],
            },
        )
        assert answer.status_code == 422, answer.text
        [(where, why)] = errors_of(answer).items()
        assert where == "items[1].inputs.image"
        assert why.startswith(f"URL refused: {socket.gethostname()} resolves to a "), why
        await no_jobs(client)
        assert sim.counters()["submissions"] == {}

        # Lists are held to the same rule, and an unknown asset is named where it is.
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "openai/vision",
                "items": [
                    {"prompt": "what is it?", "images": [{"asset_id": "nope"}]},
                    {"prompt": "and this?", "images": [{"url": "http://127.0.0.1:1/x.png"}]},
                ],
            },
        )
        assert answer.status_code == 422, answer.text
        assert errors_of(answer)["items[1].inputs.images[0]"].startswith("URL refused:")
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "openai/vision",
                "items": [{"prompt": "what is it?", "images": [{"asset_id": "nope"}]}],
            },
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "UNKNOWN_ASSET"
        assert errors_of(answer) == {"items[0].inputs.images[0]": "unknown asset 'nope'"}
        await no_jobs(client)


async def test_vision_reads_files_given_in_a_list(serve: Serve) -> None:
    async with simulated(serve, allow_private_urls=False) as (client, sim):
        upload = await client.post("/v1/assets", files={"file": ("mug.png", png(), "image/png")})
        assert upload.status_code == 201, upload.text
        asset_id = upload.json()["id"]
        # The simulator's host is the one private address the policy lets through.
        image_url = f"{sim.base_url}/files/mug.png"
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "openai/vision",
                "items": [
                    {"prompt": "describe", "images": [{"asset_id": asset_id}]},
                    {"prompt": "describe", "images": [{"url": image_url}, {"asset_id": asset_id}]},
                ],
                "wait": 60,
            },
        )
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["status"] == "completed", job
        assert job["progress"]["completed"] == 2
        items = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
        texts = [item["output"]["text"] for item in items]
        assert "1 image" in texts[0], texts
        assert "2 image" in texts[1], texts
        assert sim.counters()["submissions"]["openai"] == {"gpt-4o-mini": 2}


async def test_an_unknown_model_suggests_the_closest(serve: Serve) -> None:
    async with simulated(serve) as (client, _sim):
        answer = await client.post(
            "/v1/jobs", json={"model": "openai/visoin", "items": [{"prompt": "x"}]}
        )
        assert answer.status_code == 422
        body = answer.json()
        assert body["error"] == "UNKNOWN_MODEL"
        assert "did you mean 'openai/vision'?" in body["message"]
        assert body["details"]["suggestions"] == {"openai/visoin": "openai/vision"}


async def test_a_body_not_sent_as_json_names_the_header(serve: Serve) -> None:
    async with simulated(serve) as (client, _sim):
        form = await client.post("/v1/jobs", data={"model": "openai/speech", "items": "x"})
        assert form.status_code == 415, form.text
        assert form.json()["error"] == "UNSUPPORTED_MEDIA_TYPE"
        assert "Content-Type: application/json" in form.json()["message"]
        assert "application/x-www-form-urlencoded" in form.json()["message"]
        text = await client.post(
            "/v1/jobs", content=b"model=openai/speech", headers={"Content-Type": "text/plain"}
        )
        assert text.status_code == 415, text.text
        # Sent as JSON, a malformed body is still a plain validation error.
        broken = await client.post(
            "/v1/jobs", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 422
        await no_jobs(client)


async def test_a_dry_run_estimates_and_creates_nothing(serve: Serve) -> None:
    async with simulated(serve) as (client, sim):
        answer = await client.post(
            "/v1/jobs",
            json={
                "model": "fal/flux-kontext-lora-v2",
                "options": {"fallbacks": ["replicate/remove-background", "local/u2netp"]},
                "items": [
                    {"image": {"url": f"{sim.base_url}/a.png"}, "prompt": "on white"},
                    {"image": {"url": f"{sim.base_url}/b.png"}, "prompt": "on white"},
                ],
                "dry_run": True,
            },
        )
        assert answer.status_code == 200, answer.text
        estimate = answer.json()
        assert estimate["dry_run"] is True
        assert estimate["count"] == 2
        assert estimate["models"] == [
            "fal/flux-kontext-lora-v2",
            "replicate/remove-background",
            "local/u2netp",
        ]
        first = estimate["items"][0]
        assert [m["model"] for m in first["chain"]] == estimate["models"]
        prices = {m["model"]: (m["price"], m["currency"]) for m in first["chain"]}
        assert prices["fal/flux-kontext-lora-v2"] == (0.035, "USD")
        assert prices["replicate/remove-background"] == (None, None)
        assert prices["local/u2netp"] == (0.0, None)
        assert (first["price"], first["currency"]) == (0.035, "USD")
        assert estimate["total"] == {"price": 0.07, "currency": "USD"}

        # A model priced by something known only later makes the total unknown.
        unknown = await client.post(
            "/v1/jobs",
            json={"model": "openai/speech", "items": [{"text": "hi"}], "dry_run": True},
        )
        assert unknown.status_code == 200, unknown.text
        assert unknown.json()["total"] == {"price": None, "currency": None}

        # A dry run is checked as the real thing is.
        bad = await client.post(
            "/v1/jobs", json={"model": "openai/speech", "items": [{}], "dry_run": True}
        )
        assert bad.status_code == 422
        # ... assets included, for a recipe too (whose items' prices are not known ahead).
        recipe = await client.post(
            "/v1/jobs",
            json={
                "recipe": "image-finish",
                "items": [{"image": {"asset_id": "not-mine"}}],
                "dry_run": True,
            },
        )
        assert recipe.status_code == 422, recipe.text
        assert recipe.json()["error"] == "UNKNOWN_ASSET"
        upload = await client.post("/v1/assets", files={"file": ("mug.png", png(), "image/png")})
        finish = await client.post(
            "/v1/jobs",
            json={
                "recipe": "image-finish",
                "items": [{"image": {"asset_id": upload.json()["id"]}}],
                "dry_run": True,
            },
        )
        assert finish.status_code == 200, finish.text
        assert finish.json()["models"] == ["local/finish"]
        assert finish.json()["items"][0]["price"] is None
        await no_jobs(client)
        assert sim.counters()["submissions"] == {}


async def test_a_url_queued_unchecked_is_still_not_handed_to_a_provider(serve: Serve) -> None:
    # A job written without the submission checks (one queued before them, or built by
    # code that skipped them): the item fails at run time and the provider never sees it.
    async with simulated(serve, allow_private_urls=False) as (client, sim):
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        metadata = "http://169.254.169.254/latest/meta-data/"
        submission = JobSubmission(
            recipe="model",
            model="replicate/remove-background",
            items=[],
            item_payloads=[{"image": {"url": metadata}}],
            keys=[None],
            options={"model": "replicate/remove-background", "fallbacks": []},
            languages=None,
            priority=0,
            webhook_url=None,
            idempotency_key=None,
        )
        async with runtime.db.write() as conn:
            client_row = await runtime.clients.ensure_client(conn, LOCAL_CLIENT_NAME)
            created = await runtime.jobs.create(conn, client_row, submission)
        job = await runtime.streams.wait(created.job.id, 60)
        assert job.status == "failed", job
        [item] = (await client.get(f"/v1/jobs/{job.id}/items")).json()["data"]
        assert "URL refused" in item["error"], item
        assert "link-local" in item["error"], item
        assert sim.counters()["submissions"] == {}
