"""Error messages a client reads name what changes them, say things once and name only
settings that exist (issue 14); on SQLite and PostgreSQL over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from conveyor.config import Settings
from conveyor.providers.base import (
    Availability,
    Checkpoint,
    ModelCall,
    ModelOutput,
    ProviderState,
)
from conveyor.providers.errors import PermanentProviderError
from tests.integration.conftest import Serve

SRC = Path(__file__).resolve().parents[3] / "src" / "conveyor"


class SelfNamingModel:
    """Fails with an error that already starts with its own id, as some engines' do."""

    model_id = "test/self"
    kind = "text"

    def availability(self) -> Availability:
        return Availability(True)

    def catalogue_entry(self) -> dict[str, Any]:
        return {"id": self.model_id, "kind": self.kind, "provider": "test", "available": True}

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        raise PermanentProviderError("test/self: out of credit")


async def test_errors_never_repeat_the_model_prefix(serve: Serve) -> None:
    async with serve(SelfNamingModel()) as client:
        job = (
            await client.post(
                "/v1/jobs", json={"model": "test/self", "items": [{"text": "a"}], "wait": 20}
            )
        ).json()
        [item] = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
    assert item["error"] == "step 'generate' failed: test/self: out of credit"


async def test_upload_limits_are_told_in_mib_with_their_setting(serve: Serve) -> None:
    async with serve(max_upload_bytes=1024 * 1024) as client:
        # Past the request limit: refused before the body is read.
        huge = await client.post(
            "/v1/assets", files={"file": ("big.bin", b"x" * (2 * 1024 * 1024), "image/png")}
        )
        # Within the request's allowance for form overhead, over the file limit.
        just = await client.post(
            "/v1/assets", files={"file": ("just.bin", b"x" * (1024 * 1024 + 10), "image/png")}
        )
    assert huge.status_code == 413
    assert huge.json()["message"] == (
        "the upload is larger than the limit of 1 MiB (set by CONVEYOR_MAX_UPLOAD_BYTES)"
    )
    assert just.status_code == 413
    assert just.json()["message"] == (
        "the file is larger than the limit of 1 MiB (set by CONVEYOR_MAX_UPLOAD_BYTES)"
    )


async def test_a_refused_private_url_names_the_settings_that_allow_it(serve: Serve) -> None:
    async with serve(allow_private_urls=False) as client:
        job = (
            await client.post(
                "/v1/jobs",
                json={
                    "recipe": "image-finish",
                    "items": [{"image": {"url": "http://127.0.0.1:9/photo.png"}}],
                    "wait": 20,
                },
            )
        ).json()
        # Refused per item, or at submission where a check runs before the job exists.
        if "id" in job:
            [item] = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
            message = item["error"]
        else:
            message = job["message"]
    assert "CONVEYOR_ALLOW_PRIVATE_URLS=true" in message
    assert "CONVEYOR_ALLOWED_FETCH_HOSTS" in message


def _spec_variables() -> set[str]:
    """Environment variables the shipped provider specs read (keys, base URLs, defaults)."""
    names: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k) if not key.endswith("env_defaults") else key)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and (key.endswith("_env") or key == "env_defaults"):
            names.add(node)

    for path in (SRC / "providers" / "specs").glob("*.yaml"):
        walk(yaml.safe_load(path.read_text()))
    return names


def test_every_setting_named_in_the_code_exists() -> None:
    known = {f"CONVEYOR_{name.upper()}" for name in Settings.model_fields} | _spec_variables()
    # Read outside the settings: the env file's own name, the CLI's client options.
    known |= {"CONVEYOR_ENV_FILE", "CONVEYOR_URL", "CONVEYOR_API_KEY", "CONVEYOR_LOG_LEVEL"}
    named = re.compile(r"CONVEYOR_[A-Z0-9_]*[A-Z0-9]")
    unknown = {
        f"{path.relative_to(SRC)}: {name}"
        for path in SRC.rglob("*")
        if path.suffix in (".py", ".yaml", ".html")
        for name in named.findall(path.read_text(encoding="utf-8", errors="replace"))
        if name not in known
    }
    assert not unknown, sorted(unknown)
