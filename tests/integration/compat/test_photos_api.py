"""Seed 004's API end to end on both databases, driven as the seed's examples drive it.

Offline (no provider key at all): the seed's Python example gets its final from the local
chain (``local/analyze`` → ``local/u2netp`` → ``local/finish``), and every image and
answer is the seed's. With the simulator (``serve --simulate``): the FLUX chain, and a
forced fal failure falling back to BiRefNet, which ``/single_progress`` and ``/history``
both report. A batch of three ends in a ZIP of originals and finals.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from tests.integration.compat.photos_client import javascript_example, python_example
from tests.integration.compat.photos_stack import (
    RED,
    REMOTE_BACKGROUND,
    assert_cutout,
    assert_product_on_white,
    mug_photo,
    open_photo_stack,
    png_of,
)

SINGLE_FIELDS = {
    "status",
    "current_step",
    "gpt_completed",
    "background_processing",
    "background_completed",
    "final_processing",
    "final_completed",
    "error",
    "original_image_url",
    "background_image_url",
    "final_image_url",
}


async def test_the_seed_python_example_offline_runs_the_local_chain(
    database_url: str, tmp_path: Path
) -> None:
    photo = tmp_path / "product.jpg"
    photo.write_bytes(mug_photo())
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        run = await python_example(stack.base_url, photo)
        assert run.error is None
        assert (tmp_path / "result.png").read_bytes() == run.result
        assert run.result is not None
        assert_product_on_white(png_of(run.result).convert("RGB"), (1000, 1000))

        for answer in run.seen:
            assert set(answer) >= SINGLE_FIELDS
            assert answer["status"] in ("processing", "completed")
            assert answer["current_step"] in (
                "uploading",
                "analyzing",
                "background",
                "final",
                "completed",
            )
        done = run.seen[-1]
        pid = run.processing_id
        assert done["status"] == "completed"
        assert done["current_step"] == "completed"
        flags = ("gpt_completed", "background_completed", "final_completed")
        assert [done[flag] for flag in flags] == [True, True, True]
        assert [done["background_processing"], done["final_processing"]] == [False, False]
        assert done["error"] is None
        assert done["original_image_url"] == f"/single_image/{pid}/original"
        assert done["background_image_url"] == f"/single_image/{pid}/background"
        assert done["final_image_url"] == f"/single_image/{pid}/final"
        assert done["background_model"] == "local/u2netp"
        assert [f["model"] for f in done["fallbacks"]] == REMOTE_BACKGROUND
        assert all(f["error"].startswith("no API key") for f in done["fallbacks"])
        assert "red" in done["analysis"]["colors"]
        assert done["analysis"]["brand"] is None

        # Every image is a PNG, the JPEG original included (converted when asked for).
        original = await stack.http.get(done["original_image_url"])
        assert original.headers["content-type"] == "image/png"
        # Served like every stored file: inline only as a picture, never sniffed, sandboxed.
        assert original.headers["content-disposition"] == "inline"
        assert original.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in original.headers["content-security-policy"]
        assert png_of(original.content).size == (640, 480)
        cutout = await stack.http.get(done["background_image_url"])
        assert_cutout(png_of(cutout.content))

        history = (await stack.http.get("/history")).json()["history"]
        [entry] = history
        assert entry["id"] == pid
        assert entry["batch_id"] is None
        assert entry["filename"] == "product.jpg"
        assert entry["status"] == "completed"
        assert entry["file_size"] == photo.stat().st_size
        assert entry["processing_time"] >= 0
        analysis = done["analysis"]
        assert entry["analysis"] == {
            "category": analysis["category"],
            "description": analysis["description"],
        }


async def test_the_seed_javascript_sequence_gets_its_final(
    database_url: str, tmp_path: Path
) -> None:
    """The request sequence of the seed's JavaScript, over HTTP (no browser on this branch:
    the console's Playwright setup is not on main)."""
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        run = await javascript_example(stack.base_url, mug_photo(), "IMG_0042.JPG")
        assert run.error is None
        assert run.result is not None
        assert_product_on_white(png_of(run.result).convert("RGB"), (1000, 1000))


async def test_simulated_providers_make_it_with_flux_and_a_fal_failure_falls_back(
    database_url: str, tmp_path: Path
) -> None:
    photo = tmp_path / "mug.png"
    photo.write_bytes(mug_photo(fmt="PNG"))
    forced = {"models": {"fal/fal-ai/flux-kontext-lora": {"failure_rate": 1.0}}}
    async with open_photo_stack(database_url, tmp_path / "flux", simulate=True) as stack:
        first = await python_example(
            stack.base_url, photo, data={"modelId": "flux-kontext-lora-v1"}
        )
        done = first.seen[-1]
        assert done["status"] == "completed", done
        assert done["background_model"] == "fal/flux-kontext-lora-v1"
        assert done["fallbacks"] == []
        assert done["analysis"]["category"].startswith("simulated category")
        assert stack.sim is not None
        [flux] = [t for t in stack.sim.state.tasks.values() if "kontext" in t.model]
        assert (flux.inputs["num_inference_steps"], flux.inputs["guidance_scale"]) == (30, 2.5)

    async with open_photo_stack(
        database_url, tmp_path / "fallback", simulate=True, sim=forced
    ) as stack:
        run = await python_example(stack.base_url, photo)
        done = run.seen[-1]
        assert done["status"] == "completed", done
        assert done["background_model"] == "fal/birefnet"
        [flux_failure] = done["fallbacks"]
        assert flux_failure["model"] == "fal/flux-kontext-lora-v2"
        assert "simulated generation failure" in flux_failure["error"]
        assert stack.sim is not None
        assert stack.sim.counters()["submissions"]["fal"] == {
            "fal-ai/flux-kontext-lora": 1,
            "fal-ai/birefnet": 1,
        }
        cutout = await stack.http.get(done["background_image_url"])
        assert_cutout(png_of(cutout.content))
        entry, earlier = (await stack.http.get("/history")).json()["history"]
        assert (entry["id"], earlier["id"]) == (run.processing_id, first.processing_id)
        assert entry["status"] == "completed"
        assert entry["analysis"]["category"].startswith("simulated category")
        assert entry["background_model"] == "fal/birefnet"
        assert [f["model"] for f in entry["fallbacks"]] == ["fal/flux-kontext-lora-v2"]
        assert earlier["background_model"] == "fal/flux-kontext-lora-v1"


async def test_a_batch_of_three_ends_in_a_zip_of_originals_and_finals(
    database_url: str, tmp_path: Path
) -> None:
    photos = [
        ("files", ("mug.jpg", mug_photo(), "image/jpeg")),
        ("files", ("mug.png", mug_photo(fmt="PNG"), "image/png")),
        ("files", ("big mug.webp", mug_photo((800, 600), "WEBP"), "image/webp")),
    ]
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        started = await stack.http.post(
            "/process_batch", files=photos, data={"lora_version": "v1", "enhance": "true"}
        )
        assert started.status_code == 200, started.text
        batch_id = started.json()["batch_id"]
        done = await stack.wait_for(batch_id, path="batch_progress")
        assert done["batch_id"] == batch_id
        assert (done["total_files"], done["processed_files"]) == (3, 3)
        assert done["status"] == "completed"
        assert done["current_file"] is None
        stems = ["mug", "mug_2", "big_mug"]
        assert [r["filename"] for r in done["results"]] == ["mug.jpg", "mug.png", "big mug.webp"]
        for result, stem in zip(done["results"], stems, strict=True):
            assert result["status"] == "completed"
            assert result["original_url"] == f"/batch_image/{batch_id}/{stem}_original.png"
            assert result["processed_url"] == f"/batch_image/{batch_id}/{stem}_processed.png"
            final = await stack.http.get(result["processed_url"])
            assert_product_on_white(png_of(final.content).convert("RGB"), (1000, 1000))

        download = await stack.http.get(f"/download_batch/{batch_id}")
        assert download.status_code == 200
        assert download.headers["content-type"] == "application/zip"
        assert download.headers["x-batch-status"] == "completed"
        assert download.headers["content-disposition"].startswith(
            f'attachment; filename="batch_{batch_id}.zip"'
        )
        assert download.headers["x-content-type-options"] == "nosniff"
        archive = zipfile.ZipFile(io.BytesIO(download.content))
        names = sorted(archive.namelist())
        assert names == sorted(f"{s}_{k}.png" for s in stems for k in ("original", "processed"))
        for name in names:
            image = png_of(archive.read(name))
            if name.endswith("_original.png"):
                pixels = np.asarray(image.convert("RGB")).astype(int)
                middle = pixels[image.height // 2, image.width // 2 - image.width // 10]
                assert np.abs(middle - RED).max() < 40
        original = png_of(archive.read("big_mug_original.png"))
        assert original.size == (800, 600)  # the WEBP, converted

        history = (await stack.http.get("/history", params={"batch_id": batch_id})).json()
        entries = history["history"]
        assert [e["filename"] for e in entries] == ["mug.jpg", "mug.png", "big mug.webp"]
        assert {e["batch_id"] for e in entries} == {batch_id}
        assert len({e["id"] for e in entries}) == 3
        limited = (await stack.http.get("/history", params={"limit": 2})).json()["history"]
        assert len(limited) == 2
