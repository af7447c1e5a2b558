"""The README's SDK example, run as written against a live server: upload, create with an
idempotency key, wait with progress, download."""

from __future__ import annotations

import asyncio
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from conveyor.app import create_app
from conveyor.client import Conveyor
from conveyor.clients.service import ClientService
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from tests.integration.conftest import fast_settings
from tests.support.server import ServerThread

README = Path(__file__).resolve().parents[3] / "README.md"


def sdk_example() -> str:
    section = README.read_text().split("## Python SDK", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def create_key(database_url: str) -> str:
    async def create() -> str:
        db = Database(database_url, pool_size=1)
        try:
            key, _ = await ClientService(db, SystemClock()).create_key("readme")
            return key
        finally:
            await db.dispose()

    return asyncio.run(create())


def test_the_readme_sdk_example_runs_as_written(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = sdk_example()
    assert 'idempotency_key="' in example
    assert "on_progress=" in example
    key = create_key(database_url)
    Image.new("RGB", (120, 80), "orange").save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    settings = fast_settings(database_url, tmp_path / "data")
    with ServerThread(create_app(settings)) as server:
        code = example.replace("http://127.0.0.1:8000", server.base_url).replace("cvk_...", key)
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own code
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - sent again: the same job
        with Conveyor(server.base_url, api_key=key) as api:
            assert len(api.list_jobs()["data"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "completed 100 %"
    assert all(re.fullmatch(r"(pending|processing|completed) \d+ %", line) for line in printed)
    with zipfile.ZipFile(tmp_path / "results.zip") as archive:
        names = archive.namelist()
    assert "results.json" in names
    assert any(name.endswith(".jpg") for name in names)
