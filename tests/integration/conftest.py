from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.app import create_app
from conveyor.config import Settings
from conveyor.providers.base import ModelAdapter
from tests.support.server import serving

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def fast_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "queue_poll_interval": 0.05,
        "heartbeat_interval": 0.5,
        "sweep_interval": 1.0,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        "shutdown_grace": 1.0,
        "process_pool_size": 1,
        "secret_key": "test-secret",
        "allow_private_urls": True,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Serve:
    """Start the app on a real port with the given adapters; yields an HTTP client."""

    @asynccontextmanager
    async def start(
        *adapters: ModelAdapter, headers: dict[str, str] | None = None, **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        settings = fast_settings(database_url, tmp_path / "data", **overrides)
        app = create_app(settings, extra_adapters=adapters)
        async with (
            serving(app) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers or {}) as client,
        ):
            client.app = app  # type: ignore[attr-defined]
            yield client

    return start
