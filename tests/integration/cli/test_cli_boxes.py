"""Seed 003's management commands as ``conveyor`` commands, against the simulator over HTTP:
``providers setup kie`` checks the key with a real call and says what it enables;
``try image`` / ``try video`` go through a running server's boxes API and save the file;
``models list`` shows each model's provider and kind, as the seed's list did."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conveyor.app import create_app
from conveyor.cli import app as cli
from conveyor.config import get_settings
from conveyor.sim import SimConfig, SimulatorThread
from tests.integration.conftest import fast_settings
from tests.support import databases
from tests.support.server import ServerThread

# Variables the machine running the tests may have; each test says what it wants instead.
_CLEARED = (
    "CONVEYOR_KIE_API_KEY",
    "KIE_API_KEY",
    "CONVEYOR_KIE_BASE_URL",
    "CONVEYOR_PUBLIC_URL",
    "CONVEYOR_KIE_WEBHOOK_HMAC_KEY",
    "CONVEYOR_SIMULATE",
)


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimConfig(latency_scale=0.0)) as running:
        yield running


@pytest.fixture
def env(tmp_path: Path, sqlite_template: Path) -> dict[str, str | None]:
    return {
        **dict.fromkeys(_CLEARED),
        "CONVEYOR_DATABASE_URL": databases.fresh_sqlite_url(sqlite_template, tmp_path),
        "CONVEYOR_DATA_DIR": str(tmp_path / "data"),
        "CONVEYOR_ENV_FILE": str(tmp_path / "none.env"),
        "COLUMNS": "250",
    }


def run(env: dict[str, str | None], *args: str) -> tuple[int, str]:
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), env=env)
    get_settings.cache_clear()
    return result.exit_code, result.output


def test_providers_setup_kie_checks_the_key_and_lists_what_it_enables(
    env: dict[str, str | None], sim: SimulatorThread
) -> None:
    kie = {**env, "CONVEYOR_KIE_BASE_URL": sim.base_urls["kie"]}
    code, out = run({**kie, "CONVEYOR_KIE_API_KEY": "sim-key"}, "providers", "setup", "kie")
    assert code == 0, out
    assert "checking the Kie.ai key from CONVEYOR_KIE_API_KEY" in out
    assert "the key works; the account has 100 credits" in out
    assert "kie/seedance-1.5-pro" in out
    assert "kie/seedream-4.5" in out
    assert "callbacks: off (set CONVEYOR_PUBLIC_URL" in out
    assert sim.counters()["requests"] == {"kie": 1}

    code, out = run(kie, "providers", "setup", "kie", "--api-key", "not-a-key")
    assert code == 1
    assert "the key was refused: 401 invalid API key" in out
    code, out = run(kie, "providers", "setup", "kie", "--api-key", "sim-no-balance")
    assert code == 1
    assert "no credits left (402)" in out
    code, out = run(kie, "providers", "setup", "kie")
    assert code == 1
    assert "no Kie.ai key: pass --api-key or set CONVEYOR_KIE_API_KEY or KIE_API_KEY" in out
    down = {**env, "CONVEYOR_KIE_BASE_URL": "http://127.0.0.1:9"}
    code, out = run(down, "providers", "setup", "kie", "--api-key", "sim-key")
    assert code == 2
    assert "could not check the key: http://127.0.0.1:9/api/v1/chat/credit did not answer" in out

    called_back = {
        **kie,
        "CONVEYOR_KIE_API_KEY": "sim-key",
        "CONVEYOR_PUBLIC_URL": "https://conveyor.example",
        "CONVEYOR_KIE_WEBHOOK_HMAC_KEY": "hmac",
    }
    code, out = run(called_back, "providers", "setup", "kie")
    assert code == 0, out
    assert "callbacks: on, to https://conveyor.example, signatures checked" in out
    simulated = {**env, "CONVEYOR_SIMULATE": "true", "CONVEYOR_SIMULATOR_URL": sim.base_url}
    code, out = run(simulated, "providers", "setup", "kie")
    assert code == 0, out
    assert "simulate mode" in out


def test_try_image_and_video_through_a_running_server(
    env: dict[str, str | None], sim: SimulatorThread, tmp_path: Path
) -> None:
    code, out = run(env, "keys", "create", "tryer")
    assert code == 0, out
    key = out.strip().splitlines()[-1]
    settings = fast_settings(
        str(env["CONVEYOR_DATABASE_URL"]),
        Path(str(env["CONVEYOR_DATA_DIR"])),
        simulate=True,
        simulator_url=sim.base_url,
    )
    frame = tmp_path / "frame.png"
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (250, 120, 0)).save(buffer, "PNG")
    frame.write_bytes(buffer.getvalue())
    out_dir = tmp_path / "made"
    with ServerThread(create_app(settings)) as server:
        remote = {**env, "CONVEYOR_URL": server.base_url, "CONVEYOR_API_KEY": key}

        code, out = run(remote, "models", "list", "--kind", "video")
        assert code == 0, out
        row = next(line for line in out.splitlines() if "kie/seedance-1.5-pro" in line)
        assert "kie" in row.split("│")[2]
        assert "video" in row
        assert "yes (simulated)" in row

        code, out = run(
            remote, "try", "image", "kie/seedream-4.5", "--prompt", "a kite", "--out", str(out_dir)
        )
        assert code == 0, out
        assert "created box 'conveyor try'" in out
        assert "COMPLETED: image/" in out
        (image,) = out_dir.iterdir()
        assert out.strip().endswith(f"saved: {image}")
        assert image.stat().st_size > 0

        code, out = run(
            remote,
            "try",
            "video",
            "kie/seedance-1.5-pro",
            "--image",
            str(frame),
            "--prompt",
            "it moves",
            "-c",
            "duration=5",
            "--out",
            str(out_dir),
        )
        assert code == 0, out
        assert "uploaded frame.png as asset" in out
        assert "created box" not in out  # the same box again
        video = next(p for p in out_dir.iterdir() if p.suffix == ".gif")
        assert video.read_bytes()[:6] == b"GIF89a"
        (task,) = [t for t in sim.counters()["tasks"].values() if "seedance" in t["model"]]
        assert task["status"] == "succeeded"

        code, out = run(
            remote, "try", "video", "kie/seedream-4.5", "--image", str(frame), "--prompt", "x"
        )
        assert code == 1
        assert "PARENT_NOT_ACCEPTED" in out

        sim.update_config(
            {"models": {"kie/bytedance/seedance-1.5-pro": {"kie_moderation_rate": 1}}}
        )
        code, out = run(
            remote,
            "try",
            "video",
            "kie/seedance-1.5-pro",
            "--image",
            str(frame),
            "--prompt",
            "x",
            "--out",
            str(out_dir),
        )
        assert code == 1
        assert "generation failed" in out
        assert "failCode 400" in out
