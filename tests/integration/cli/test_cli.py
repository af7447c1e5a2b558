"""The ``conveyor`` CLI against a live server: keys, submit with progress, jobs, catalogue,
providers added as data, the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.app import create_app
from conveyor.cli import app as cli
from conveyor.config import get_settings
from conveyor.sim import SimConfig, SimulatorThread
from tests.integration.catalog.test_catalog_api import NEW_PROVIDER
from tests.integration.conftest import fast_settings
from tests.support import databases
from tests.support.adapters import ScriptedModel
from tests.support.server import ServerThread


@pytest.fixture
def env(tmp_path: Path, sqlite_template: Path) -> Iterator[dict[str, str]]:
    url = databases.fresh_sqlite_url(sqlite_template, tmp_path)
    with SimulatorThread(SimConfig(latency_scale=0.0)) as sim:
        yield {
            "CONVEYOR_DATABASE_URL": url,
            "CONVEYOR_DATA_DIR": str(tmp_path / "data"),
            "CONVEYOR_SIMULATE": "true",
            "CONVEYOR_SIMULATOR_URL": sim.base_url,
            "CONVEYOR_ENV_FILE": str(tmp_path / "none.env"),
            "COLUMNS": "250",
        }


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), env=env)
    get_settings.cache_clear()
    return result.exit_code, result.output


def test_cli_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    code, out = _run(env, "keys", "create", "cli-client")
    assert code == 0, out
    key = out.strip().splitlines()[-1]
    assert key.startswith("cvk_")
    code, out = _run(env, "keys", "list")
    assert "cli-client" in out
    assert key not in out  # only the prefix is ever shown again

    spec = tmp_path / "acme.yaml"
    spec.write_text(NEW_PROVIDER)
    code, out = _run(env, "providers", "add", str(spec))
    assert code == 0, out
    assert "added provider acme" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\n")
    code, out = _run(env, "providers", "add", str(bad))
    assert code == 1
    assert "invalid provider spec" in out

    settings = fast_settings(
        env["CONVEYOR_DATABASE_URL"],
        Path(env["CONVEYOR_DATA_DIR"]),
        simulate=True,
        simulator_url=env["CONVEYOR_SIMULATOR_URL"],
    )
    with ServerThread(create_app(settings, extra_adapters=[ScriptedModel()])) as server:
        remote = {**env, "CONVEYOR_URL": server.base_url, "CONVEYOR_API_KEY": key}
        items = tmp_path / "items.json"
        items.write_text(json.dumps([{"text": "one"}, {"text": "two"}]))
        out_dir = tmp_path / "out"
        code, out = _run(
            remote, "submit", "--model", "test/echo", "--items", str(items), "--out", str(out_dir)
        )
        assert code == 0, out
        assert "2 completed, 0 failed" in out
        job_id = out.split("job ")[1].split()[0]
        # Each output under its input's name (items by their place), mapped in results.json.
        assert sorted(p.name for p in out_dir.iterdir()) == [
            "item-1.txt",
            "item-2.txt",
            "results.json",
        ]
        mapping = json.loads((out_dir / "results.json").read_text())["inputs"]
        assert mapping["items.json[1]"]["outputs"] == ["item-2.txt"]
        assert mapping["items.json[1]"]["text"] == "echo two"

        code, out = _run(remote, "jobs", "list")
        assert job_id[:8] in out
        code, out = _run(remote, "jobs", "show", job_id)
        assert "echo one" in out
        code, out = _run(remote, "jobs", "show", "missing-job")
        assert code == 1
        assert "404" in out
        code, out = _run(remote, "models", "list")
        assert "acme/painter" in out
        assert "local/finish" in out
        code, out = _run(remote, "providers", "test", "acme")
        assert code == 0, out
        assert "acme/painter works" in out
        assert "simulated: the provider simulator answered, not acme itself" in out

        code, out = _run({**remote, "CONVEYOR_API_KEY": "cvk_wrong"}, "jobs", "list")
        assert code == 1
        assert "401" in out

    code, out = _run({**env, "CONVEYOR_URL": "http://127.0.0.1:9"}, "jobs", "list")
    assert code == 1
    assert "cannot reach the server at http://127.0.0.1:9" in out

    code, out = _run(env, "keys", "revoke", key[:12])
    assert code == 0, out
    code, out = _run(env, "queue", "dead")
    assert code == 0, out


def test_serve_refuses_a_public_address_without_keys(env: dict[str, str]) -> None:
    code, out = _run(env, "serve", "--host", "0.0.0.0", "--port", "1")  # noqa: S104
    assert code == 2
    assert "refusing to listen on 0.0.0.0" in out


def test_cli_provider_replace_remove_and_admin_keys(env: dict[str, str], tmp_path: Path) -> None:
    from tests.integration.catalog.test_providers_as_data import TINY_KIE

    spec = tmp_path / "kie.yaml"
    spec.write_text(TINY_KIE)
    code, out = _run(env, "providers", "add", str(spec))
    assert code == 1
    assert "'kie' is already a provider shipped with Conveyor" in out
    assert "--replace" in out
    code, out = _run(env, "providers", "add", "--replace", str(spec))
    assert code == 0, out
    assert "added shipped provider kie with models: kie/tiny" in out
    code, out = _run(env, "providers", "add", str(spec))
    assert code == 1
    assert "already a stored provider" in out
    code, out = _run(env, "providers", "remove", "kie")
    assert code == 0, out
    assert "removed provider kie; the shipped kie spec is back" in out
    code, out = _run(env, "providers", "remove", "kie")
    assert code == 1
    assert "shipped with Conveyor and cannot be removed" in out
    code, out = _run(env, "providers", "remove", "nope")
    assert code == 1
    assert "no stored provider 'nope'" in out
    row = tmp_path / "row.yaml"
    row.write_text(
        "provider: kie\nname: x\nmodel_type: IMAGE\napi_endpoint: /a\nrequest_schema: {}\n"
    )
    code, out = _run(env, "providers", "add", str(row))
    assert code == 1
    assert "POST /v1/providers" in out

    code, out = _run(env, "keys", "create", "ops", "--admin")
    assert code == 0, out
    assert "Admin API key for client ops" in out
    code, out = _run(env, "keys", "create", "acme")
    code, out = _run(env, "keys", "list")
    cells = [
        [cell.strip() for cell in line.split("│")] for line in out.splitlines() if "cvk_" in line
    ]
    scopes = {row[2]: row[5] for row in cells}
    assert scopes == {"ops": "admin", "acme": "client"}
