from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.errors import ConfigurationError


def test_defaults_are_the_single_machine_setup() -> None:
    settings = Settings(_env_file=None)
    assert settings.resolved_database_url == "sqlite+aiosqlite:///data/conveyor.db"
    assert settings.resolved_storage_path == Path("data/assets")


def test_prod_refuses_to_start_without_a_strong_secret_key() -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Settings(_env_file=None, env="prod")


def test_s3_storage_needs_a_bucket() -> None:
    with pytest.raises(ConfigurationError, match="S3_BUCKET"):
        Settings(_env_file=None, storage="s3")


def test_prod_accepts_a_strong_secret_key() -> None:
    settings = Settings(_env_file=None, env="prod", secret_key="x" * 32)
    assert settings.secret_key == "x" * 32
