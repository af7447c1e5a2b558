"""Issue 14's CLI, run for real: server commands find the server the way `serve` was told,
admin commands refuse a database with no schema, the first key says open mode ends, `keys
revoke` takes what `keys list` shows, `submit --file a b --out DIR` names outputs after
their inputs with a results.json, failed items say why, `jobs retry` follows progress,
tables keep ids whole and show brackets, flags read as flags, and `serve` has a banner."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from conveyor.app import create_app
from conveyor.cli import app as cli
from conveyor.config import get_settings
from conveyor.core.db import standalone_engine
from tests.integration.conftest import fast_settings
from tests.support import databases
from tests.support.adapters import ScriptedModel
from tests.support.server import ServerThread, free_port

Env = dict[str, str | None]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    # Variables of the machine running the tests are unset: each test says what it wants.
    return {
        "CONVEYOR_URL": None,
        "CONVEYOR_API_KEY": None,
        "CONVEYOR_HOST": None,
        "CONVEYOR_PORT": None,
        "CONVEYOR_DATABASE_URL": None,
        "CONVEYOR_SIMULATE": None,
        "CONVEYOR_DATA_DIR": str(tmp_path / "data"),
        "CONVEYOR_ENV_FILE": str(tmp_path / "none.env"),
        "COLUMNS": "250",
    }


def run(env: Env, *args: str) -> tuple[int, str]:
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), env=env)
    get_settings.cache_clear()
    return result.exit_code, result.output


def png(path: Path, colour: str) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A PostgreSQL database that exists but was never migrated."""
    reason = databases.postgres_unavailable_reason()
    if reason is not None:
        if databases.POSTGRES_REQUIRED:
            pytest.fail(f"PostgreSQL is required: {reason}")
        pytest.skip(f"PostgreSQL not reachable: {reason}")
    name = f"conveyor_empty_{uuid.uuid4().hex[:10]}"

    async def execute(statement: str) -> None:
        engine = standalone_engine(databases.POSTGRES_URL)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(databases.POSTGRES_URL).set(database=name).render_as_string(False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_admin_commands_refuse_a_missing_sqlite_database(env: Env, tmp_path: Path) -> None:
    database = tmp_path / "data" / "conveyor.db"
    for command in (("keys", "create", "acme"), ("keys", "list"), ("queue", "dead")):
        code, out = run(env, *command)
        assert code == 1, out
        assert f"the database {database} does not exist" in " ".join(out.split())
        assert "cvk_" not in out
    assert not database.exists()
    assert not (tmp_path / "data").exists()


def test_admin_commands_refuse_an_empty_sqlite_database(env: Env, tmp_path: Path) -> None:
    database = tmp_path / "elsewhere.db"
    database.touch()
    code, out = run(
        {**env, "CONVEYOR_DATABASE_URL": f"sqlite+aiosqlite:///{database}"},
        "keys",
        "create",
        "acme",
    )
    assert code == 1, out
    assert f"the database {database} has no Conveyor schema" in " ".join(out.split())
    assert "cvk_" not in out
    assert database.stat().st_size == 0  # nothing was created in it


@pytest.mark.postgres
def test_admin_commands_refuse_an_empty_postgres_database(env: Env, empty_postgres: str) -> None:
    code, out = run({**env, "CONVEYOR_DATABASE_URL": empty_postgres}, "keys", "create", "acme")
    assert code == 1, out
    name = make_url(empty_postgres).database
    assert f"/{name} has no Conveyor schema" in " ".join(out.split())
    assert "cvk_" not in out


def test_first_key_ends_open_mode_and_revoke_takes_what_list_shows(
    env: Env, database_url: str
) -> None:
    env = {**env, "CONVEYOR_DATABASE_URL": database_url}
    code, out = run(env, "keys", "create", "acme")
    assert code == 0, out
    flat = " ".join(out.split())
    assert "first active key, so open mode ends" in flat
    assert "belongs to the client local" in flat
    assert "conveyor keys create local" in flat
    first = out.strip().splitlines()[-1]
    code, out = run(env, "keys", "create", "acme", "--label", "second")
    assert code == 0, out
    assert "open mode" not in out
    second = out.strip().splitlines()[-1]
    code, out = run(env, "keys", "create", "ops", "--label", "third")
    third = out.strip().splitlines()[-1]

    # A narrow terminal wraps other cells, never an id or a prefix.
    code, out = run({**env, "COLUMNS": "80"}, "keys", "list")
    assert code == 0, out
    ids = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", out)
    assert len(ids) == 3
    for key in (first, second, third):
        assert key[:12] in out
    assert "…" not in out

    code, out = run(env, "keys", "revoke", ids[0])
    assert code == 0, out
    code, out = run(env, "keys", "revoke", f"{second[:12]}…")  # as revoke itself prints it
    assert code == 0, out
    code, out = run(env, "keys", "revoke", third)  # the whole key, pasted
    assert code == 0, out
    assert f"revoked {third[:12]}… of client ops" in out
    code, out = run(env, "keys", "revoke", "cvk_[x]")
    assert code == 1
    assert "no active key with id or prefix 'cvk_[x]'" in out  # errors are not markup
    code, out = run(env, "keys", "list")
    assert len(re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", out)) == 6


def test_server_commands_find_the_server_as_serve_was_told(env: Env, tmp_path: Path) -> None:
    database = databases.fresh_sqlite_url(
        databases.sqlite_template(tmp_path / "template"), tmp_path
    )
    settings = fast_settings(database, tmp_path / "data")
    with ServerThread(create_app(settings, extra_adapters=[ScriptedModel()])) as server:
        told = {**env, "CONVEYOR_HOST": "127.0.0.1", "CONVEYOR_PORT": str(server.port)}
        code, out = run(told, "jobs", "list")
        assert code == 0, out
        assert "status" in out
        code, out = run({**told, "CONVEYOR_HOST": "0.0.0.0"}, "models", "list")  # noqa: S104
        assert code == 0, out
        assert "test/echo" in out
    port = free_port()
    code, out = run({**env, "CONVEYOR_PORT": str(port)}, "jobs", "list")
    assert code == 1
    assert f"cannot reach the server at http://127.0.0.1:{port}" in " ".join(out.split())
    code, out = run({**env, "CONVEYOR_URL": f"http://127.0.0.1:{port}/"}, "jobs", "list")
    assert f"cannot reach the server at http://127.0.0.1:{port}" in " ".join(out.split())


def test_submit_names_outputs_after_inputs_and_says_why_items_failed(
    env: Env, tmp_path: Path
) -> None:
    database = databases.fresh_sqlite_url(
        databases.sqlite_template(tmp_path / "template"), tmp_path
    )
    settings = fast_settings(database, tmp_path / "data")
    photos = tmp_path / "photos"
    photos.mkdir()
    red = png(photos / "red.png", "red")
    blue = png(photos / "blue.png", "blue")
    broken = photos / "broken.png"
    broken.write_bytes(b"not an image at all")
    out_dir = tmp_path / "out"
    with ServerThread(create_app(settings)) as server:
        remote = {**env, "CONVEYOR_URL": server.base_url}
        code, out = run(
            remote,
            "submit",
            "--recipe",
            "image-finish",
            "-o",
            "size=64",
            "--file",
            str(red),
            str(blue),
            str(broken),
            "--out",
            str(out_dir),
        )
        flat = " ".join(out.split())
        assert "accepted with 3 item(s)" in flat, out
        assert "2 completed, 1 failed" in flat, out
        assert code == 2, out  # completed, with a failed item: scripts can tell
        job_id = flat.split("job ")[1].split()[0]
        assert re.search(rf"{re.escape(str(broken))} failed: \S+", flat), out
        assert sorted(p.name for p in out_dir.iterdir()) == ["blue.png", "red.png", "results.json"]
        assert Image.open(out_dir / "red.png").getpixel((0, 0))[:3] != (0, 0, 255)
        document = json.loads((out_dir / "results.json").read_text())
        assert document["job"]["id"] == job_id
        mapping = document["inputs"]
        assert mapping[str(red)]["outputs"] == ["red.png"]
        assert mapping[str(blue)]["outputs"] == ["blue.png"]
        assert mapping[str(broken)]["outputs"] == []
        assert mapping[str(broken)]["status"] == "failed"
        assert mapping[str(broken)]["error"]

        # Unpacked next to the inputs, an output never overwrites its input.
        before = red.read_bytes()
        code, out = run(
            remote, "submit", "--recipe", "image-finish", "-o", "size=64", "--file", str(red),
            "--out", str(photos),
        )  # fmt: skip
        assert code == 0, out
        assert red.read_bytes() == before
        assert (photos / "red.out.png").is_file()

        code, out = run(remote, "jobs", "retry", job_id)
        flat = " ".join(out.split())
        assert code == 2, out
        assert "retrying 1 item(s)" in flat, out
        assert f"job {job_id} " in flat  # followed to the end, with the outcome
        assert "2 completed, 1 failed" in flat, out
        assert "3/3" in flat  # the progress bar's last state
        assert "item 3 failed:" in flat  # no inputs known here: items by their place


def test_tables_keep_ids_whole_and_brackets_and_flags_read_as_flags(
    env: Env, tmp_path: Path
) -> None:
    code, out = run(env, "serve", "--help")
    assert code == 0
    assert "--no-workers" in out
    assert "<bool>" not in out
    database = databases.fresh_sqlite_url(
        databases.sqlite_template(tmp_path / "template"), tmp_path
    )
    settings = fast_settings(database, tmp_path / "data")
    with ServerThread(create_app(settings)) as server:
        code, out = run(
            {**env, "CONVEYOR_URL": server.base_url, "COLUMNS": "250"}, "models", "list"
        )
        assert "FLUX.1 [schnell] (Replicate)" in out
        code, out = run({**env, "CONVEYOR_URL": server.base_url, "COLUMNS": "70"}, "models", "list")
        assert "replicate/flux-kontext-dev" in out or "replicate/flux-schnell" in out
        assert "…" not in out


def test_serve_banner_says_where_how_and_which_models(env: Env, tmp_path: Path) -> None:
    from conveyor.cli.banner import announce, banner_lines, models_line

    database = databases.fresh_sqlite_url(
        databases.sqlite_template(tmp_path / "template"), tmp_path
    )
    settings = fast_settings(database, tmp_path / "data", port=18734)
    written: list[str] = []
    app = announce(
        create_app(settings, extra_adapters=[ScriptedModel(available=False)]), written.append
    )
    with ServerThread(app):
        pass
    assert len(written) == 1
    banner = written[0]
    assert "Conveyor on http://127.0.0.1:18734" in banner
    assert "open mode" in banner
    assert f"SQLite {make_url(database).database}" in banner
    assert str(tmp_path / "data" / "assets") in banner
    available = re.search(r"models: +(\d+) of (\d+) available", banner)
    assert available is not None
    assert int(available.group(1)) < int(available.group(2))
    assert re.search(r"\n +\d+ not: no API key for \S+: set CONVEYOR_\w+_KEY", banner)

    lines = models_line(
        [{"available": True}]
        + [{"available": False, "unavailable_reason": f"reason {n % 5}"} for n in range(10)]
    )
    assert lines[0].split(None, 1)[1] == "1 of 11 available (conveyor models list)"
    assert [line.strip() for line in lines[1:]] == [
        "2 not: reason 0",
        "2 not: reason 1",
        "2 not: reason 2",
        "4 more for other reasons",
    ]

    keyed = banner_lines(settings, active_keys=True, models=[])
    assert "API keys required" in keyed[1]
