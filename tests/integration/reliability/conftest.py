"""A private PostgreSQL cluster for the tests that restart the database (never the shared
server): skipped where none can be started, failed instead under
``CONVEYOR_TEST_POSTGRES=required``. ``CONVEYOR_TEST_CLUSTER_PORT`` picks its port (a free
one otherwise)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import databases
from tests.support.postgres_cluster import (
    PostgresCluster,
    cluster_unavailable_reason,
    private_cluster,
)
from tests.support.server import free_port


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    reason = cluster_unavailable_reason()
    if reason is not None:
        if databases.POSTGRES_REQUIRED:
            pytest.fail(f"PostgreSQL is required (CONVEYOR_TEST_POSTGRES=required): {reason}")
        pytest.skip(f"cannot start a private PostgreSQL cluster: {reason}")
    port = int(os.environ.get("CONVEYOR_TEST_CLUSTER_PORT") or free_port())
    with private_cluster(port) as running:
        yield running
