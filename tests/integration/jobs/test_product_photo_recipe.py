"""``product-photo`` end to end through the real engine, on SQLite and PostgreSQL.

Offline (no provider key): the analysis falls to ``local/analyze``, the background chain
skips every remote model for want of a key and ``local/u2netp`` cuts the product out,
``local/finish`` puts it on white. With the simulator standing in for the providers (as
``serve --simulate`` does) and fal's FLUX Kontext LoRA forced to fail, BiRefNet makes the
cut-out and the item's provenance says why FLUX did not.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageDraw

from conveyor.app import create_app
from conveyor.sim import RunningSimulator, SimConfig, start_simulator
from tests.integration.conftest import Serve, fast_settings
from tests.support.server import serving

RED, TEAL = (200, 30, 30), (0, 128, 128)
REMOTE = ["fal/flux-kontext-lora-v2", "fal/birefnet", "replicate/remove-background"]


def mug_photo() -> bytes:
    """A red mug (body and handle) on a teal backdrop, 640×480 JPEG."""
    image = Image.new("RGB", (640, 480), TEAL)
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((230, 120, 410, 380), radius=20, fill=RED)
    draw.ellipse((395, 180, 480, 300), outline=RED, width=22)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


async def run_photo(
    client: httpx.AsyncClient, options: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """Upload the mug, run it through product-photo, return the upload id and the item."""
    upload = await client.post("/v1/assets", files={"file": ("mug.jpg", mug_photo())})
    assert upload.status_code == 201
    asset_id = upload.json()["id"]
    created = await client.post(
        "/v1/jobs",
        json={
            "recipe": "product-photo",
            "items": [{"image": {"asset_id": asset_id}, "filename": "mug.jpg"}],
            "options": options or {},
            "wait": 120,
        },
    )
    assert created.status_code == 200, created.text  # waited for, and finished
    job = created.json()
    assert job["status"] == "completed", job
    results = (await client.get(f"/v1/jobs/{job['id']}/results")).json()
    [item] = results["items"]
    return asset_id, item


async def image_of(client: httpx.AsyncClient, asset_id: str) -> Image.Image:
    answer = await client.get(f"/v1/assets/{asset_id}/content")
    assert answer.status_code == 200
    return Image.open(io.BytesIO(answer.content))


def assert_product_on_white(final: Image.Image, size: tuple[int, int]) -> None:
    assert final.mode == "RGB"  # flattened: no alpha for any marketplace
    assert final.size == size
    pixels = np.asarray(final).astype(int)
    assert (pixels[5, 5] >= 250).all()  # white canvas
    middle = pixels[size[1] // 2, size[0] // 2 - size[0] // 10]
    assert np.abs(middle - RED).max() < 40  # the mug, not the teal backdrop
    teal = np.all(np.abs(pixels - TEAL) < 40, axis=2)
    assert teal.mean() < 0.002


def assert_cutout(image: Image.Image) -> None:
    assert (image.format, image.mode) == ("PNG", "RGBA")
    alpha = np.asarray(image)[..., 3]
    assert alpha[5, 5] == 0
    assert alpha[250, 320] == 255


async def test_offline_the_local_models_make_the_photo(serve: Serve) -> None:
    async with serve(process_pool_size=1) as client:
        uploaded, item = await run_photo(client)
        output = item["output"]
        assert item["status"] == "completed"
        assert item["key"] == "mug.jpg"
        assert item["stage"] == "final"

        assert output["analysis_model"] == "local/analyze"
        analysis = output["analysis"]
        assert "red" in analysis["colors"]
        assert analysis["brand"] is None
        assert analysis["product_name"] is None
        assert output["background_model"] == "local/u2netp"
        provenance = output["provenance"]
        assert provenance["analysis"]["model"] == "local/analyze"
        [vision] = provenance["analysis"]["fallback_from"]
        assert vision["model"] == "openai/vision"
        assert vision["error"].startswith("no API key")
        skipped = provenance["background"]["fallback_from"]
        assert [s["model"] for s in skipped] == REMOTE
        assert all(s["error"].startswith("no API key") for s in skipped)
        assert provenance["final"] == {"model": "local/finish"}

        assert output["original"]["asset_id"] == uploaded
        assert output["original"]["mime_type"] == "image/jpeg"
        assert output["background"]["mime_type"] == "image/png"
        assert_cutout(await image_of(client, output["background"]["asset_id"]))
        assert output["final"]["mime_type"] == "image/png"
        assert (output["final"]["width"], output["final"]["height"]) == (1000, 1000)
        assert_product_on_white(await image_of(client, output["final"]["asset_id"]), (1000, 1000))


@asynccontextmanager
async def simulated(
    database_url: str, data_dir: Path, sim: dict[str, Any]
) -> AsyncIterator[tuple[httpx.AsyncClient, RunningSimulator]]:
    """Conveyor in simulate mode against a simulator on its own port."""
    config = SimConfig.model_validate({"latency_min": 0, "latency_max": 0, **sim})
    simulator = await start_simulator(config, "127.0.0.1")
    settings = fast_settings(
        database_url, data_dir, simulate=True, simulator_url=simulator.base_url
    )
    try:
        async with (
            serving(create_app(settings)) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=60) as client,
        ):
            yield client, simulator
    finally:
        await simulator.close()


async def test_a_failing_fal_model_falls_back_and_the_provenance_says_so(
    database_url: str, tmp_path: Path
) -> None:
    forced = {"models": {"fal/fal-ai/flux-kontext-lora": {"failure_rate": 1.0}}}
    async with simulated(database_url, tmp_path / "data", forced) as (client, simulator):
        _, item = await run_photo(
            client, {"marketplace": "wildberries", "format": "jpeg", "enhance": True}
        )
        output = item["output"]
        assert output["analysis_model"] == "openai/vision"
        assert output["analysis"]["category"].startswith("simulated category")
        assert output["prompt_source"] == "analysis"
        assert output["prompt"] == output["analysis"]["recommended_prompt"]

        assert output["background_model"] == "fal/birefnet"
        [flux] = output["provenance"]["background"]["fallback_from"]
        assert flux["model"] == "fal/flux-kontext-lora-v2"
        assert "simulated generation failure" in flux["error"]
        submissions = simulator.counters()["submissions"]
        assert submissions["fal"] == {"fal-ai/flux-kontext-lora": 1, "fal-ai/birefnet": 1}
        assert "replicate" not in submissions
        [flux_task] = [t for t in simulator.state.tasks.values() if "kontext" in t.model]
        assert flux_task.inputs["num_inference_steps"] == 50
        assert flux_task.inputs["guidance_scale"] == 3.5
        assert flux_task.inputs["prompt"] == output["prompt"]

        # BiRefNet's answer is the cut-out of the photo that was sent, not a drawing.
        assert_cutout(await image_of(client, output["background"]["asset_id"]))
        assert output["enhance"]["levels"]["applied"] in (True, False)
        assert_cutout(await image_of(client, output["enhanced"]["asset_id"]))
        final = await image_of(client, output["final"]["asset_id"])
        assert final.format == "JPEG"
        assert_product_on_white(final, (900, 1200))
