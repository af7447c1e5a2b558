"""The whole service on S3 storage: a running app with ``CONVEYOR_STORAGE=s3`` against a real
S3-compatible server (moto over HTTP), on SQLite and PostgreSQL.

An upload lands in the bucket; a job (``image-finish``, offline) stores its result there; the
result comes back through the API and inside the job's ZIP; and a remote model (the
simulator's Replicate) is handed the stored input as a presigned S3 link that answers with the
uploaded bytes without any credentials. (moto does not check signatures, so whether a
tampered link is refused is S3's business and not asserted here.)
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session
from PIL import Image

from conveyor.sim import RunningSimulator, SimConfig, start_simulator
from tests.integration.conftest import Serve
from tests.support.s3server import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    create_bucket,
    running_s3_server,
)

PREFIX = "conveyor/"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with running_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimConfig(latency_min=0, latency_max=0))
    async with running:
        yield running


async def _bucket_keys(endpoint: str, bucket: str) -> list[str]:
    async with get_session().create_client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    ) as s3:
        listed = await s3.list_objects_v2(Bucket=bucket)
    return sorted(str(entry["Key"]) for entry in listed.get("Contents", []))


def _photo() -> bytes:
    image = Image.new("RGB", (320, 240), (40, 120, 200))
    image.paste((220, 30, 30), (100, 70, 220, 170))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def _job(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/jobs", json={**body, "wait": 120})
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    assert job["status"] == "completed", job
    return job


async def test_a_running_app_keeps_its_files_in_s3(
    serve: Serve, s3_endpoint: str, simulator: RunningSimulator
) -> None:
    bucket = f"conveyor-{uuid.uuid4().hex[:12]}"
    await create_bucket(s3_endpoint, bucket)
    photo = _photo()
    async with serve(
        storage="s3",
        s3_bucket=bucket,
        s3_prefix=PREFIX,
        s3_endpoint_url=s3_endpoint,
        s3_region=REGION,
        s3_access_key_id=ACCESS_KEY_ID,
        s3_secret_access_key=SECRET_ACCESS_KEY,
        simulate=True,
        simulator_url=simulator.base_url,
    ) as client:
        upload = await client.post("/v1/assets", files={"file": ("photo.jpg", photo)})
        assert upload.status_code == 201, upload.text
        uploaded = upload.json()

        finished = await _job(
            client,
            {
                "recipe": "image-finish",
                "options": {"size": 200, "format": "png"},
                "items": [{"image": {"asset_id": uploaded["id"]}, "name": "cup"}],
            },
        )
        [item] = (await client.get(f"/v1/jobs/{finished['id']}/results")).json()["items"]
        [result] = item["output"]["files"]
        served = await client.get(f"/v1/assets/{result['asset_id']}/content")
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(served.content)).size == (200, 200)

        download = await client.get(f"/v1/jobs/{finished['id']}/download?format=zip")
        assert download.status_code == 200
        archive = zipfile.ZipFile(io.BytesIO(download.content))
        assert sorted(archive.namelist()) == ["00001-cup/1.png", "results.json"]
        assert archive.read("00001-cup/1.png") == served.content

        # Both files are objects in the bucket, under the configured prefix.
        result_meta = (await client.get(f"/v1/assets/{result['asset_id']}")).json()
        keys = await _bucket_keys(s3_endpoint, bucket)
        assert all(key.startswith(PREFIX) for key in keys)
        for meta in (uploaded, result_meta):
            assert any(meta["sha256"] in key for key in keys), (meta, keys)

        # A remote model gets the stored input as a presigned link to the bucket.
        await _job(
            client,
            {
                "model": "replicate/remove-background",
                "items": [{"image": {"asset_id": uploaded["id"]}}],
            },
        )
    [task] = simulator.state.tasks.values()
    link = str(task.inputs["image"])
    assert link.startswith(f"{s3_endpoint}/{bucket}/{PREFIX}")
    assert "Signature=" in link
    async with httpx.AsyncClient() as anyone:
        fetched = await anyone.get(link)
        assert fetched.status_code == 200
        assert fetched.content == photo


async def test_markup_in_the_bucket_downloads_from_its_own_links(
    serve: Serve, s3_endpoint: str
) -> None:
    """A presigned (or public-bucket) link is answered by the object store, not by us: the
    type stored with the object is what the browser gets, so HTML named ``.png`` and an SVG
    with ``onload`` are stored as ``application/octet-stream``; a picture keeps its type."""
    bucket = f"conveyor-{uuid.uuid4().hex[:12]}"
    await create_bucket(s3_endpoint, bucket)
    files = {
        "x.png": b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        "photo.jpg": _photo(),
    }
    async with serve(
        storage="s3",
        s3_bucket=bucket,
        s3_prefix=PREFIX,
        s3_endpoint_url=s3_endpoint,
        s3_region=REGION,
        s3_access_key_id=ACCESS_KEY_ID,
        s3_secret_access_key=SECRET_ACCESS_KEY,
    ) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        served: dict[str, str] = {}
        for name, data in files.items():
            upload = await client.post("/v1/assets", files={"file": (name, data)})
            assert upload.status_code == 201, upload.text
            async with runtime.db.read() as conn:
                asset = await runtime.assets.get(conn, upload.json()["id"])
            link = await runtime.storage.presigned_url(asset.storage_key)
            async with httpx.AsyncClient() as anyone:
                fetched = await anyone.get(link)
            assert fetched.status_code == 200
            assert fetched.content == data
            served[name] = fetched.headers["content-type"]
    assert served == {
        "x.png": "application/octet-stream",
        "logo.svg": "application/octet-stream",
        "photo.jpg": "image/jpeg",
    }
