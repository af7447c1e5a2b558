"""A storage backend on S3 or any S3-compatible server (MinIO, Ceph, R2, moto…).

One aiobotocore client per backend, opened on first use and reused, so requests share a
connection pool. A write buffers the stream up to one part: if the stream ends first it is
a single ``PutObject``, otherwise a multipart upload of fixed-size parts (S3 wants at least
5 MiB for every part but the last), aborted if anything fails so no invisible parts are
left to pay for. Both are atomic on the server: the object appears when the last request
succeeds. Memory use is one part, whatever the object size. Reads stream the ``GetObject``
body. With ``endpoint_url`` the client uses path-style addressing, which every
S3-compatible server understands; ``prefix`` scopes all keys under one folder of a shared
bucket. A bucket lifecycle rule that aborts stale multipart uploads is still advisable, for
uploads cut short by a killed process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from conveyor.storage.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectNotFound,
    ObjectStream,
    StorageBackend,
    StorageError,
    StorageUnavailable,
)
from conveyor.storage.keys import check_key

MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
# Errors that mean "this store is not usable now" rather than "this request was wrong".
_UNAVAILABLE_CODES = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "SlowDown",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalError",
    }
)


class S3Storage(StorageBackend):
    """Objects in one S3 bucket, optionally under a key prefix."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        max_attempts: int = 3,
        max_pool_connections: int = 50,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.part_size = part_size
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._config = AioConfig(
            s3={"addressing_style": "path"} if endpoint_url else None,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            signature_version="s3v4",
            max_pool_connections=max_pool_connections,
            connect_timeout=10,
            read_timeout=60,
            # Default checksum headers are rejected by several S3-compatible servers;
            # sending them only where the API requires them works everywhere.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        self._exit_stack = contextlib.AsyncExitStack()

    def object_key(self, key: str) -> str:
        """The key in the bucket, prefix included."""
        return self.prefix + check_key(key)

    async def write(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        object_key = self.object_key(key)
        client = await self._get_client()
        extra = {"ContentType": content_type} if content_type else {}
        buffer = bytearray()
        total = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                while len(buffer) >= self.part_size:
                    if upload_id is None:
                        with _translate_errors(key):
                            started = await client.create_multipart_upload(
                                Bucket=self.bucket, Key=object_key, **extra
                            )
                        upload_id = str(started["UploadId"])
                    with memoryview(buffer) as view:
                        part = bytes(view[: self.part_size])
                    del buffer[: self.part_size]
                    parts.append(await self._upload_part(client, key, upload_id, len(parts), part))
            if upload_id is None:
                with _translate_errors(key):
                    await client.put_object(
                        Bucket=self.bucket, Key=object_key, Body=bytes(buffer), **extra
                    )
                return total
            if buffer:
                parts.append(
                    await self._upload_part(client, key, upload_id, len(parts), bytes(buffer))
                )
            with _translate_errors(key):
                await client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=object_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                await self._abort_upload(client, object_key, upload_id)
            raise
        return total

    async def open(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        object_key = self.object_key(key)
        client = await self._get_client()
        with _translate_errors(key):
            response = await client.get_object(Bucket=self.bucket, Key=object_key)
        body = response["Body"]

        async def release() -> None:
            body.close()

        return ObjectStream(
            _body_chunks(body, key, chunk_size),
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType"),
            release=release,
        )

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except ObjectNotFound:
            return False
        return True

    async def size(self, key: str) -> int:
        object_key = self.object_key(key)
        client = await self._get_client()
        with _translate_errors(key):
            response = await client.head_object(Bucket=self.bucket, Key=object_key)
        return int(response["ContentLength"])

    async def delete(self, key: str) -> None:
        object_key = self.object_key(key)
        client = await self._get_client()
        # S3 answers 204 for a missing key too, so deleting is idempotent already.
        with _translate_errors(key):
            await client.delete_object(Bucket=self.bucket, Key=object_key)

    async def check(self) -> None:
        client = await self._get_client()
        try:
            with _translate_errors(None):
                await client.head_bucket(Bucket=self.bucket)
        except StorageUnavailable:
            raise
        except StorageError as exc:
            raise StorageUnavailable(f"bucket {self.bucket!r} is not usable: {exc}") from exc

    async def presigned_url(self, key: str, *, expires: int = 3600) -> str | None:
        if not 1 <= expires <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
        object_key = self.object_key(key)
        client = await self._get_client()
        url = await client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": object_key}, ExpiresIn=expires
        )
        return str(url)

    async def close(self) -> None:
        async with self._client_lock:
            self._client = None
            await self._exit_stack.aclose()

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                session = get_session()
                self._client = await self._exit_stack.enter_async_context(
                    session.create_client(
                        "s3",
                        region_name=self._region,
                        endpoint_url=self.endpoint_url,
                        aws_access_key_id=self._access_key_id,
                        aws_secret_access_key=self._secret_access_key,
                        config=self._config,
                    )
                )
            return self._client

    async def _upload_part(
        self, client: Any, key: str, upload_id: str, index: int, data: bytes
    ) -> dict[str, Any]:
        part_number = index + 1
        with _translate_errors(key):
            response = await client.upload_part(
                Bucket=self.bucket,
                Key=self.object_key(key),
                UploadId=upload_id,
                PartNumber=part_number,
                Body=data,
            )
        return {"ETag": response["ETag"], "PartNumber": part_number}

    async def _abort_upload(self, client: Any, object_key: str, upload_id: str) -> None:
        # Best effort: the original error matters more, and a lifecycle rule catches leftovers.
        with contextlib.suppress(BotoCoreError, ClientError, aiohttp.ClientError, TimeoutError):
            await client.abort_multipart_upload(
                Bucket=self.bucket, Key=object_key, UploadId=upload_id
            )


async def _body_chunks(body: Any, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
    try:
        while True:
            with _translate_errors(key):
                chunk = await body.read(chunk_size)
            if not chunk:
                return
            yield chunk
    finally:
        body.close()


@contextlib.contextmanager
def _translate_errors(key: str | None) -> Iterator[None]:
    """Turn botocore and aiohttp failures into the storage error tree."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if key is not None and code in _MISSING_OBJECT_CODES:
            raise ObjectNotFound(key) from exc
        if code in _UNAVAILABLE_CODES or status >= 500 or status in (403, 404):
            raise StorageUnavailable(f"S3 refused the request: {code or status}") from exc
        raise StorageError(
            f"S3 request failed: {code or status} {error.get('Message', '')}"
        ) from exc
    except ParamValidationError as exc:
        raise StorageError(f"invalid S3 request: {exc}") from exc
    except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
        raise StorageUnavailable(f"S3 endpoint unreachable: {exc}") from exc
