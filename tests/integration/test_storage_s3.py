"""The S3 backend against a real S3-compatible server (moto over HTTP on localhost).

The shared storage contract runs here unchanged; the tests below it check what only S3
does: multipart uploads and their cleanup, the key prefix, content types, presigned URLs
and the readiness probe.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session

from conveyor.storage import S3Storage, StorageBackend, StorageUnavailable
from conveyor.storage.s3 import MIN_PART_SIZE
from tests.support.s3server import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    create_bucket,
    running_s3_server,
)
from tests.unit.storage.backend_contract import (
    LARGE_SIZE,
    StorageContract,
    random_bytes,
    stream_of,
    stream_parts,
)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with running_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
async def bucket(s3_endpoint: str) -> str:
    name = f"conveyor-{uuid.uuid4().hex[:12]}"
    await create_bucket(s3_endpoint, name)
    return name


def make_storage(endpoint: str, bucket: str, **options: Any) -> S3Storage:
    return S3Storage(
        bucket,
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        part_size=MIN_PART_SIZE,
        **options,
    )


@pytest.fixture
async def s3(s3_endpoint: str, bucket: str) -> AsyncIterator[S3Storage]:
    storage = make_storage(s3_endpoint, bucket)
    yield storage
    await storage.close()


@pytest.fixture
async def raw_client(s3_endpoint: str) -> AsyncIterator[Any]:
    """A plain S3 client, to look at the bucket without going through the backend."""
    async with get_session().create_client(
        "s3",
        region_name=REGION,
        endpoint_url=s3_endpoint,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    ) as client:
        yield client


class TestS3Storage(StorageContract):
    @pytest.fixture
    async def storage(self, s3: S3Storage) -> StorageBackend:
        return s3


async def list_keys(client: Any, bucket: str) -> list[str]:
    response = await client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in response.get("Contents", []))


async def test_large_stream_is_a_multipart_upload(
    s3: S3Storage, raw_client: Any, bucket: str
) -> None:
    data = random_bytes(LARGE_SIZE)

    await s3.write("large.bin", stream_of(data, 512 * 1024))

    head = await raw_client.head_object(Bucket=bucket, Key="large.bin")
    # A multipart object's ETag ends in "-<number of parts>": 12 MiB in 5 MiB parts is 3.
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(data)
    assert await s3.read_bytes("large.bin") == data


async def test_small_stream_is_a_single_put(s3: S3Storage, raw_client: Any, bucket: str) -> None:
    await s3.write("small.bin", stream_parts([b"a", b"b", b"c"]))

    head = await raw_client.head_object(Bucket=bucket, Key="small.bin")
    assert "-" not in head["ETag"]
    assert head["ContentLength"] == 3


async def test_stream_of_exactly_one_part_round_trips(s3: S3Storage) -> None:
    data = random_bytes(MIN_PART_SIZE)

    assert await s3.write("one-part", stream_of(data, MIN_PART_SIZE)) == MIN_PART_SIZE
    assert await s3.read_bytes("one-part") == data


async def test_failed_multipart_upload_is_aborted(
    s3: S3Storage, raw_client: Any, bucket: str
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield random_bytes(2 * MIN_PART_SIZE + 10)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError):
        await s3.write("broken", failing())

    uploads = await raw_client.list_multipart_uploads(Bucket=bucket)
    assert uploads.get("Uploads", []) == []
    assert await list_keys(raw_client, bucket) == []


async def test_prefix_scopes_keys_within_a_shared_bucket(
    s3_endpoint: str, bucket: str, raw_client: Any
) -> None:
    tenant_a = make_storage(s3_endpoint, bucket, prefix="/tenant-a/")
    tenant_b = make_storage(s3_endpoint, bucket, prefix="tenant-b")
    try:
        await tenant_a.write("same/key", stream_parts([b"from a"]))
        await tenant_b.write("same/key", stream_parts([b"from b"]))
        await tenant_a.write("only-a", stream_parts([b"a"]))

        assert await list_keys(raw_client, bucket) == [
            "tenant-a/only-a",
            "tenant-a/same/key",
            "tenant-b/same/key",
        ]
        assert await tenant_a.read_bytes("same/key") == b"from a"
        assert await tenant_b.read_bytes("same/key") == b"from b"
        assert not await tenant_b.exists("only-a")
    finally:
        await tenant_a.close()
        await tenant_b.close()


async def test_content_type_is_stored(s3: S3Storage, raw_client: Any, bucket: str) -> None:
    await s3.write("image.png", stream_parts([b"\x89PNG"]), content_type="image/png")

    async with await s3.open("image.png") as stream:
        assert stream.content_type == "image/png"
        assert stream.size == 4
    head = await raw_client.head_object(Bucket=bucket, Key="image.png")
    assert head["ContentType"] == "image/png"


async def test_presigned_url_serves_the_object(s3: S3Storage) -> None:
    data = random_bytes(5000)
    await s3.write("shared/file.bin", stream_parts([data]))

    url = await s3.presigned_url("shared/file.bin", expires=600)

    assert url is not None
    assert "/shared/file.bin" in url
    assert "X-Amz-Signature=" in url
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.read() == data


async def test_presigned_url_rejects_unreasonable_expiry(s3: S3Storage) -> None:
    with pytest.raises(ValueError, match="expires"):
        await s3.presigned_url("key", expires=0)


async def test_check_fails_for_a_missing_bucket(s3_endpoint: str) -> None:
    storage = make_storage(s3_endpoint, "no-such-bucket-here")
    try:
        with pytest.raises(StorageUnavailable):
            await storage.check()
    finally:
        await storage.close()


def unused_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_server_is_unavailable() -> None:
    storage = make_storage(f"http://127.0.0.1:{unused_local_port()}", "bucket", max_attempts=1)
    try:
        with pytest.raises(StorageUnavailable):
            await storage.check()
        with pytest.raises(StorageUnavailable):
            await storage.write("key", stream_parts([b"x"]))
    finally:
        await storage.close()


def test_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Storage("bucket", part_size=MIN_PART_SIZE - 1)
