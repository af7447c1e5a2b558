"""Seed 003's boxes and assets over HTTP, against the simulator, on SQLite and PostgreSQL.

The seed's flow end to end (box → upload → image → img2vid with the parent kept → files
downloaded through ``file_url`` with no key), a model added as an AIModel row and used at
once, a Kie task refused by moderation, and every request a client can get wrong, refused
before any provider hears of it. Generations finish when the test moves the shared manual
clock past the simulated latency; the simulator's callback wakes the step at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.compat.boxes_support import (
    api_key,
    asset,
    bearer,
    download,
    png,
    settled,
    upload,
    wav,
)
from tests.integration.providers.callback_stack import SECRETS, Stack, open_stack, until

SEEDANCE = "bytedance/seedance-1.5-pro"


@pytest.fixture(autouse=True)
def callback_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


async def new_box(
    stack: Stack, name: str = "Campaign", headers: dict[str, str] | None = None
) -> str:
    answer = await stack.http.post("/api/boxes/", json={"name": name}, headers=headers or {})
    assert answer.status_code == 201, answer.text
    box_id: str = answer.json()["id"]
    return box_id


async def generate(
    stack: Stack, box_id: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    answer = await stack.http.post(
        f"/api/boxes/{box_id}/generate/", json=body, headers=headers or {}
    )
    assert answer.status_code == 202, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def finish_kie_task(stack: Stack, asset_id: str) -> dict[str, Any]:
    """Let the one running Kie task end: its callback finishes the asset."""
    await until(lambda: stack.clock.sleepers == 1)
    tasks = [t for t in stack.sim.state.tasks.values() if t.protocol == "kie"]
    stack.clock.advance(max(t.latency for t in tasks))
    return await settled(stack, asset_id)


def refused(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == code, body
    message: str = body["message"]
    return message


async def test_the_seed_flow_upload_image_img2vid_and_download(
    database_url: str, tmp_path: Path
) -> None:
    async with open_stack(database_url, tmp_path / "data") as stack:
        box_id = await new_box(stack)
        photo = png()
        uploaded = await upload(stack, box_id, photo, "first-frame.png")
        assert uploaded.status_code == 201, uploaded.text
        first = uploaded.json()
        assert first["status"] == "COMPLETED"
        assert first["source_type"] == "UPLOADED"
        assert first["box"] == box_id
        assert (first["mime_type"], first["size"]) == ("image/png", len(photo))
        assert first["parent_asset"] is None
        fetched = await download(first["file_url"])
        assert fetched.status_code == 200
        assert fetched.content == photo

        stack.clock.advance(1)  # newest first: each asset a second after the last
        image = await generate(stack, box_id, {"model": "kie/seedream-4.5", "prompt": "a harbour"})
        assert image["status"] == "PENDING"
        assert image["source_type"] == "GENERATED"
        assert (image["model"], image["prompt"]) == ("kie/seedream-4.5", "a harbour")
        assert image["file_url"] is None
        await until(lambda: stack.clock.sleepers == 1)
        running = await asset(stack, image["id"])
        assert running["status"] == "PROCESSING"
        (kie_task,) = stack.sim.state.tasks.values()
        assert running["external_task_id"] == kie_task.id
        done = await finish_kie_task(stack, image["id"])
        assert done["status"] == "COMPLETED", done
        assert done["mime_type"].startswith("image/")
        assert done["external_task_id"] == kie_task.id
        picture = await download(done["file_url"])
        assert picture.status_code == 200
        assert len(picture.content) == done["size"]

        video = await generate(
            stack,
            box_id,
            {
                "model": "kie/seedance-1.5-pro",
                "prompt": "Two people arm wrestling in a vintage room, cinematic",
                "parent_asset": first["id"],
                "config": {"duration": "5", "resolution": "480p"},
            },
        )
        assert video["source_type"] == "IMG2VID"
        assert video["parent_asset"] == first["id"]
        assert video["config"] == {"duration": "5", "resolution": "480p"}
        finished = await finish_kie_task(stack, video["id"])
        assert finished["status"] == "COMPLETED", finished
        assert finished["parent_asset"] == first["id"]
        seedance = next(t for t in stack.sim.state.tasks.values() if t.model == SEEDANCE)
        sent = json.loads(seedance.extra["param"])
        assert sent["model"] == SEEDANCE
        assert sent["input"]["duration"] == "5"
        assert sent["input"]["resolution"] == "480p"
        # The provider fetched the parent through a signed link to this server.
        (parent_url,) = sent["input"]["input_urls"]
        assert parent_url.startswith(f"{stack.base_url}/v1/assets/")
        assert (await download(parent_url)).content == photo
        clip = await download(finished["file_url"])
        assert clip.status_code == 200
        assert clip.content[:6] == b"GIF89a"  # the simulator's stand-in for a video
        assert clip.headers["content-type"] == finished["mime_type"] == "image/gif"

        listed = (await stack.http.get(f"/api/boxes/{box_id}/assets/")).json()
        assert [a["id"] for a in listed] == [video["id"], image["id"], first["id"]]
        assert [a["status"] for a in listed] == ["COMPLETED"] * 3
        boxes = (await stack.http.get("/api/boxes")).json()  # no trailing slash works too
        assert [(b["id"], b["asset_count"]) for b in boxes] == [(box_id, 3)]
        # Each generation is a durable job, listed with the others.
        jobs = (await stack.http.get("/v1/jobs")).json()["data"]
        assert {j["id"] for j in jobs} == {image["job_id"], video["job_id"]}
        assert stack.sim.counters()["submissions_total"] == 2


async def test_a_model_added_over_http_is_used_at_once_and_its_dry_run_matches(
    database_url: str, tmp_path: Path
) -> None:
    row = {
        "provider": "kie",
        "name": "Seedance Fast",
        "model_type": "VIDEO",
        "api_endpoint": "/api/v1/jobs/createTask",
        "request_schema": {
            "model": SEEDANCE,
            "input": {
                "prompt": "{{prompt}}",
                "input_urls": ["{{image_url}}"],
                "aspect_ratio": "16:9",
                "resolution": "720p",
                "duration": "8",
            },
        },
        "is_active": True,
    }
    async with open_stack(database_url, tmp_path / "data") as stack:
        added = await stack.http.post("/v1/providers", json=row)
        assert added.status_code == 201, added.text
        model_id = added.json()["model"]
        assert model_id == "kie/seedance-fast"
        dry = await stack.http.post(
            f"/v1/models/{model_id}/render",
            json={"inputs": {"prompt": "waves", "image_url": "https://cdn.example/f.jpg"}},
        )
        assert dry.status_code == 200, dry.text
        assert dry.json()["body"]["input"]["input_urls"] == ["https://cdn.example/f.jpg"]
        assert dry.json()["headers"]["Authorization"] == "Bearer ***"

        box_id = await new_box(stack, "AIModel rows")
        first = (await upload(stack, box_id, png(), "frame.png")).json()
        made = await generate(
            stack, box_id, {"model": model_id, "prompt": "waves", "parent_asset": first["id"]}
        )
        assert made["source_type"] == "IMG2VID"
        done = await finish_kie_task(stack, made["id"])
        assert done["status"] == "COMPLETED", done
        (task,) = stack.sim.state.tasks.values()
        sent = json.loads(task.extra["param"])
        assert sent["model"] == SEEDANCE
        assert sent["input"]["prompt"] == "waves"
        assert sent["input"]["input_urls"][0].startswith(f"{stack.base_url}/v1/assets/")

        # A row whose schema wants what a generation never gives: refused, nothing sent.
        styled = {**row, "name": "Seedance Styled"}
        styled["request_schema"] = {
            "model": SEEDANCE,
            "input": {
                "prompt": "{{prompt}}",
                "style": "{{style}}",
                "input_urls": ["{{image_url}}"],
            },
        }
        stored = await stack.http.post("/v1/providers", json=styled)
        assert stored.status_code in (200, 201), stored.text  # kie is stored already
        assert stored.json()["model"] == "kie/seedance-styled"
        answer = await stack.http.post(
            f"/api/boxes/{box_id}/generate/",
            json={"model": "kie/seedance-styled", "prompt": "x", "parent_asset": first["id"]},
        )
        assert "style" in refused(answer, 422, "MISSING_VARIABLES")
        answer = await stack.http.post(
            f"/api/boxes/{box_id}/generate/",
            json={
                "model": "kie/seedance-styled",
                "prompt": "x",
                "parent_asset": first["id"],
                "config": {"style": "noir"},
            },
        )
        assert answer.status_code == 202, answer.text
        assert stack.sim.counters()["submissions_total"] in (1, 2)


async def test_a_moderated_kie_task_ends_failed_with_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    sim = {"models": {f"kie/{SEEDANCE}": {"kie_moderation_rate": 1}}}
    async with open_stack(database_url, tmp_path / "data", sim=sim) as stack:
        box_id = await new_box(stack)
        first = (await upload(stack, box_id, png(), "frame.png")).json()
        made = await generate(
            stack,
            box_id,
            {"model": "kie/seedance-1.5-pro", "prompt": "a duel", "parent_asset": first["id"]},
        )
        failed = await finish_kie_task(stack, made["id"])
        assert failed["status"] == "FAILED"
        assert "flagged by the content moderation system (failCode 400)" in failed["error_message"]
        assert failed["file_url"] is None
        (task,) = stack.sim.state.tasks.values()
        assert failed["external_task_id"] == task.id
        assert stack.polls(task) == 1  # failed at the first look, never polled on


async def test_bad_requests_are_refused_before_any_provider_call(
    database_url: str, tmp_path: Path
) -> None:
    alice = bearer(await api_key(database_url, "alice"))
    bob = bearer(await api_key(database_url, "bob"))
    async with open_stack(database_url, tmp_path / "data") as stack:
        box_id = await new_box(stack, headers=alice)
        photo = (await upload(stack, box_id, png(), "p.png", alice)).json()
        sound = (await upload(stack, box_id, wav(), "s.wav", alice)).json()
        assert sound["mime_type"] == "audio/wav"

        # Unknown, or another client's: the same 404.
        for box in ("no-such-box", box_id):
            refused(await stack.http.get(f"/api/boxes/{box}/", headers=bob), 404, "BOX_NOT_FOUND")
            refused(
                await stack.http.get(f"/api/boxes/{box}/assets/", headers=bob), 404, "BOX_NOT_FOUND"
            )
            refused(
                await stack.http.patch(f"/api/boxes/{box}/", json={"name": "x"}, headers=bob),
                404,
                "BOX_NOT_FOUND",
            )
            refused(
                await stack.http.delete(f"/api/boxes/{box}/", headers=bob), 404, "BOX_NOT_FOUND"
            )
            refused(await upload(stack, box, png(), "p.png", bob), 404, "BOX_NOT_FOUND")
            refused(
                await stack.http.post(
                    f"/api/boxes/{box}/generate/",
                    json={"model": "kie/seedream-4.5", "prompt": "x"},
                    headers=bob,
                ),
                404,
                "BOX_NOT_FOUND",
            )
        for asset_id in ("no-such-asset", photo["id"]):
            refused(
                await stack.http.get(f"/api/assets/{asset_id}/", headers=bob),
                404,
                "ASSET_NOT_FOUND",
            )
        bobs_box = await new_box(stack, headers=bob)
        refused(
            await stack.http.post(
                f"/api/boxes/{bobs_box}/generate/",
                json={"model": "kie/seedance-1.5-pro", "prompt": "x", "parent_asset": photo["id"]},
                headers=bob,
            ),
            404,
            "ASSET_NOT_FOUND",
        )

        async def attempt(body: dict[str, Any]) -> Any:
            return await stack.http.post(f"/api/boxes/{box_id}/generate/", json=body, headers=alice)

        message = refused(
            await attempt({"model": "acme/nothing", "prompt": "x"}), 422, "UNKNOWN_MODEL"
        )
        assert "acme/nothing" in message
        refused(await attempt({"model": "openai/vision", "prompt": "x"}), 422, "NOT_A_MEDIA_MODEL")
        message = refused(
            await attempt(
                {"model": "kie/seedream-4.5", "prompt": "x", "parent_asset": photo["id"]}
            ),
            422,
            "PARENT_NOT_ACCEPTED",
        )
        assert "not a video model" in message
        refused(
            await attempt(
                {"model": "kie/seedance-1.5-pro", "prompt": "x", "parent_asset": sound["id"]}
            ),
            422,
            "PARENT_NOT_IMAGE",
        )
        message = refused(
            await attempt({"model": "kie/seedance-1.5-pro", "prompt": "x"}), 422, "PARENT_REQUIRED"
        )
        assert "'image'" in message
        refused(
            await attempt({"model": "kie/seedream-4.5", "prompt": "x", "config": {"prompt": "y"}}),
            422,
            "CONFIG_CONFLICT",
        )
        refused(
            await attempt(
                {
                    "model": "kie/seedream-4.5",
                    "prompt": "x",
                    "config": {"style": {"url": "http://10.0.0.1/x.png"}},
                }
            ),
            422,
            "CONFIG_CONFLICT",
        )
        refused(
            await attempt(
                {"model": "kie/seedream-4.5", "prompt": "x", "config": {"quality": "ultra"}}
            ),
            422,
            "VALIDATION_ERROR",
        )
        refused(await attempt({"model": "kie/seedream-4.5"}), 422, "VALIDATION_ERROR")
        refused(
            await attempt({"model": "kie/seedream-4.5", "prompt": "x", "box": 1}),
            422,
            "VALIDATION_ERROR",
        )
        # NUL characters no database stores in text: refused at the door (RequestGuard), as
        # everywhere, with a 400; and ids that are not ids.
        refused(
            await attempt({"model": "kie/seedream-4.5", "prompt": "a\x00b"}),
            400,
            "NUL_CHARACTER",
        )
        refused(
            await attempt(
                {"model": "kie/seedream-4.5", "prompt": "x", "config": {"aspect_ratio": "1:1\x00"}}
            ),
            400,
            "NUL_CHARACTER",
        )
        refused(
            await stack.http.post("/api/boxes/", json={"name": "a\x00"}, headers=alice),
            400,
            "NUL_CHARACTER",
        )
        refused(await stack.http.get("/api/assets/%00/", headers=alice), 400, "NUL_CHARACTER")
        refused(await stack.http.get("/api/boxes/12/", headers=alice), 404, "BOX_NOT_FOUND")
        page = b"<html><body>not media</body></html>"
        refused(await upload(stack, box_id, page, "p.png", alice), 415, "UNSUPPORTED_MEDIA_TYPE")
        refused(
            await stack.http.post("/api/boxes/", json={"name": ""}, headers=alice),
            422,
            "VALIDATION_ERROR",
        )

        # A parent that is not finished yet.
        pending = await generate(stack, box_id, {"model": "kie/seedream-4.5", "prompt": "x"}, alice)
        refused(
            await attempt(
                {"model": "kie/seedance-1.5-pro", "prompt": "x", "parent_asset": pending["id"]}
            ),
            409,
            "PARENT_NOT_READY",
        )

        # Only the one valid generation reached a provider, and only it made a job.
        await until(lambda: stack.sim.counters()["submissions_total"] == 1)
        jobs = (await stack.http.get("/v1/jobs", headers=alice)).json()["data"]
        assert [j["id"] for j in jobs] == [pending["job_id"]]
        assert (await stack.http.get("/v1/jobs", headers=bob)).json()["data"] == []
        listed = (await stack.http.get(f"/api/boxes/{box_id}/assets/", headers=alice)).json()
        assert len(listed) == 3
