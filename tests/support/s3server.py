"""A real S3-compatible HTTP server for tests: moto's server mode on a free local port.

``running_s3_server()`` starts it in a background thread and yields the endpoint URL;
``create_bucket`` makes a fresh bucket on it. Tests talk to it over HTTP exactly as they would
to MinIO or AWS, so the S3 backend is tested through its real client, not a mock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

# moto accepts any credentials; fixed ones keep the client from searching the environment.
ACCESS_KEY_ID = "conveyor-test"
SECRET_ACCESS_KEY = "conveyor-test-secret"
REGION = "us-east-1"


@contextmanager
def running_s3_server() -> Iterator[str]:
    """Run an S3-compatible server on 127.0.0.1 (free port) and yield its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


async def create_bucket(endpoint_url: str, bucket: str) -> None:
    """Create ``bucket`` on the server at ``endpoint_url``."""
    async with get_session().create_client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    ) as client:
        await client.create_bucket(Bucket=bucket)
