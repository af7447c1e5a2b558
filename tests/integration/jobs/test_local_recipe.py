"""A recipe end to end with no provider key: upload → job → worker (process pool, real
Pillow engine) → stored asset → ZIP download, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import zipfile

from PIL import Image

from tests.integration.conftest import Serve


def _photo() -> bytes:
    image = Image.new("RGB", (640, 480), (40, 120, 200))
    for x in range(200, 440):
        for y in range(140, 340):
            image.putpixel((x, y), (220, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def test_image_finish_runs_offline_from_upload_to_download(serve: Serve) -> None:
    async with serve(process_pool_size=1) as client:
        upload = await client.post("/v1/assets", files={"file": ("photo.jpg", _photo())})
        assert upload.status_code == 201
        assert upload.json()["mime_type"] == "image/jpeg"
        job = (
            await client.post(
                "/v1/jobs",
                json={
                    "recipe": "image-finish",
                    "options": {"preset": "ozon", "format": "png"},
                    "items": [{"image": {"asset_id": upload.json()["id"]}, "name": "cup"}],
                    "wait": 120,
                },
            )
        ).json()
        assert job["status"] == "completed", job
        archive = zipfile.ZipFile(
            io.BytesIO((await client.get(f"/v1/jobs/{job['id']}/download?format=zip")).content)
        )
        results = json.loads(archive.read("results.json"))
        [item] = results["items"]
        assert item["key"] == "cup"
        assert item["model_used"] == "local/finish"
        [name] = [n for n in archive.namelist() if n != "results.json"]
        assert name.startswith("00001-cup/")
        finished = Image.open(io.BytesIO(archive.read(name)))
    # The Ozon preset is 3:4; the background the product was padded with is white.
    assert finished.format == "PNG"
    assert finished.size == (1200, 1600)
    assert finished.convert("RGB").getpixel((2, 2)) == (255, 255, 255)
