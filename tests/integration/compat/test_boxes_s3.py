"""Box files on S3 (moto's server over HTTP): ``file_url`` is a presigned URL a client
downloads with no key, providers get presigned URLs of parents, and a bucket the operator
declares public (``CONVEYOR_S3_PUBLIC_URL``) is linked without any signature."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiobotocore.session import get_session

from tests.integration.compat.boxes_support import download, png, upload
from tests.integration.compat.test_boxes_api import finish_kie_task, generate, new_box
from tests.integration.providers.callback_stack import SECRETS, open_stack
from tests.support.s3server import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    create_bucket,
    running_s3_server,
)


@pytest.fixture(autouse=True)
def callback_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with running_s3_server() as endpoint:
        yield endpoint


async def s3_settings(endpoint: str, *, public: bool = False) -> dict[str, Any]:
    bucket = f"boxes-{uuid.uuid4().hex[:12]}"
    await create_bucket(endpoint, bucket)
    settings: dict[str, Any] = {
        "storage": "s3",
        "s3_bucket": bucket,
        "s3_prefix": "media",
        "s3_endpoint_url": endpoint,
        "s3_region": REGION,
        "s3_access_key_id": ACCESS_KEY_ID,
        "s3_secret_access_key": SECRET_ACCESS_KEY,
    }
    if public:
        # What an operator does to make a bucket public: anyone may read its objects.
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
        async with get_session().create_client(
            "s3",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        ) as client:
            await client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        settings["s3_public_url"] = f"{endpoint}/{bucket}"
    return settings


async def test_file_urls_are_presigned_and_download_without_a_key(
    database_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    settings = await s3_settings(s3_endpoint)
    async with open_stack(database_url, tmp_path / "data", **settings) as stack:
        box_id = await new_box(stack)
        photo = png((200, 200, 20))
        first = (await upload(stack, box_id, photo, "frame.png")).json()
        url = first["file_url"]
        assert url.startswith(f"{s3_endpoint}/{settings['s3_bucket']}/media/")
        assert "X-Amz-Signature=" in url
        fetched = await download(url)
        assert fetched.status_code == 200
        assert fetched.content == photo
        # Without its signature the same object is refused: the bucket is private.
        assert (await download(url.split("?")[0])).status_code == 403

        clip = await generate(
            stack,
            box_id,
            {"model": "kie/seedance-1.5-pro", "prompt": "waves", "parent_asset": first["id"]},
        )
        done = await finish_kie_task(stack, clip["id"])
        assert done["status"] == "COMPLETED", done
        video = await download(done["file_url"])
        assert video.status_code == 200
        assert len(video.content) == done["size"]
        assert video.content[:6] == b"GIF89a"
        # The provider was given a presigned URL of the parent, straight from the bucket.
        (task,) = stack.sim.state.tasks.values()
        (parent_url,) = json.loads(task.extra["param"])["input"]["input_urls"]
        assert parent_url.startswith(f"{s3_endpoint}/{settings['s3_bucket']}/media/")
        assert (await download(parent_url)).content == photo


async def test_a_public_bucket_is_linked_without_a_signature(
    database_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    settings = await s3_settings(s3_endpoint, public=True)
    async with open_stack(database_url, tmp_path / "data", **settings) as stack:
        box_id = await new_box(stack)
        photo = png((1, 2, 3))
        first = (await upload(stack, box_id, photo, "frame.png")).json()
        url = first["file_url"]
        parts = urlsplit(url)
        assert url.startswith(f"{settings['s3_public_url']}/media/")
        assert parts.query == ""
        assert parts.path.endswith(".png")
        fetched = await download(url)
        assert fetched.status_code == 200
        assert fetched.content == photo
