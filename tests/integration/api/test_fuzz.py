"""Schemathesis over the whole OpenAPI document: whatever a client sends, the answer is
never a 5xx, and every error has the standard JSON body (seed 004's routes: its own body,
the seed's number as ``code``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from conveyor.app import create_app
from tests.integration.conftest import fast_settings
from tests.support import databases
from tests.support.adapters import ScriptedModel
from tests.support.server import ServerThread


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    directory = tmp_path_factory.mktemp("fuzz")
    url = databases.fresh_sqlite_url(databases.sqlite_template(directory), directory)
    app = create_app(
        fast_settings(url, Path(directory) / "data", max_wait_seconds=0.5),
        extra_adapters=[ScriptedModel()],
    )
    with ServerThread(app) as server:
        yield server


def _operations(base_url: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


SEED_004_TAG = "product photos (seed 004)"


def test_no_input_gets_a_server_error(live_server: ServerThread) -> None:
    operations = _operations(live_server.base_url)
    assert len(operations) >= 10
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            if case.path.endswith("/events"):
                # A live stream would never end; its error paths are the job lookup.
                case.path_parameters = {"job_id": "no-such-job"}
            response = case.call(base_url=live_server.base_url, timeout=10)
            calls.append(response.status_code)
            label = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{label}: {response.text}"
            if response.status_code >= 400:
                body = response.json()
                assert {"error", "message", "code"} <= set(body), (label, body)
                # Seed 004's routes answer with the seed's numbers; a path no route matches
                # (a model id with a newline) gets the application's own 404.
                seed_004 = SEED_004_TAG in (case.operation.tags or [])
                seed_code = seed_004 and 4000 <= body["code"] < 5000
                assert seed_code or body["code"] == response.status_code, (label, body)

        check()
    # Generated cases reached the server, and some were valid enough to succeed.
    assert len(calls) >= 100
    assert any(status < 300 for status in calls)
