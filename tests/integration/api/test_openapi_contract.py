"""The OpenAPI document is a true contract: schemathesis (its command line, as a user would run
it) sends every operation the document's boundary and fuzzed cases, with and without an API
key, on SQLite and PostgreSQL, and finds no 5xx, no status the document leaves out, no
undocumented content type and no body that breaks its schema.

Without a key the app is in open mode (no key exists), so every request reaches the
database, NUL characters and all; with one, schemathesis also sends requests without it or
with a wrong one (the 401s) and the admin operations run. Revoking the key would end the run
early, so that one operation is left out.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.app import create_app
from conveyor.clients.service import ClientService
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from tests.integration.conftest import fast_settings
from tests.support.adapters import ScriptedModel
from tests.support.server import ServerThread

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


async def _admin_key(database_url: str) -> str:
    db = Database(database_url)
    try:
        key, _ = await ClientService(db, SystemClock()).create_key("fuzzer", scope="admin")
    finally:
        await db.dispose()
    return key


@pytest.mark.parametrize("with_key", [False, True], ids=["open", "api-key"])
def test_every_answer_is_documented(database_url: str, tmp_path: Path, with_key: bool) -> None:
    headers: list[str] = []
    if with_key:
        headers = ["-H", f"Authorization: Bearer {asyncio.run(_admin_key(database_url))}"]
    settings = fast_settings(
        database_url,
        tmp_path / "data",
        # Sync answers (media, descriptions, wait) give up fast: nothing here finishes.
        max_wait_seconds=0.5,
        media_sync_wait=0.5,
        descriptions_sync_wait=0.5,
    )
    app = create_app(settings, extra_adapters=[ScriptedModel()])
    schemathesis = Path(sys.executable).parent / "schemathesis"
    with ServerThread(app) as server:
        command = [
            str(schemathesis),
            "run",
            f"{server.base_url}/openapi.json",
            *headers,
            "--checks",
            CHECKS,
            "--phases",
            "coverage,fuzzing",
            "--max-examples",
            "5",
            "--generation-deterministic",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            # A live event stream never ends; its errors are the job lookup's, tested here
            # through the other /v1/jobs/{job_id} operations.
            "--exclude-path-regex",
            "/events$",
            "--exclude-operation-id",
            "revoke_key_v1_keys__key__delete",
        ]
        # In the test's own directory: the CLI keeps a cache (.schemathesis/) where it runs.
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
        )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    summary = report[report.rfind("SUMMARY") :]
    assert "Failures:" not in summary, report[-6000:]
    assert "Errors:" not in summary, report[-6000:]
