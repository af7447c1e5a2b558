"""The pieces a benchmark run stands up and tears down: databases, a worker process, the API.

Every run gets a fresh database: a migrated SQLite file in a temporary directory, or a
PostgreSQL database created for the run and dropped after it (``BENCH_POSTGRES_URL`` names
the server, default ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``). The worker
is a real ``conveyor worker`` process, so its RSS and CPU are its own; the API is served by
uvicorn in the benchmark's loop, as ``tests/support/server.py`` does.

The shipped gen-api spec carries gen-api's account limits (32 requests in flight, 10 per
second): at 10 requests/s, polling 10,000 tasks every 3 s is impossible by design. The
benchmark therefore stores a copy of it, with only ``limits`` changed, as an operator-added
provider (``CatalogService.add_provider(..., replace=True)``, which replaces a shipped spec of
the same name on every node that opens the database). The poll protocol stays exactly as shipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import uvicorn
import yaml
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url

from conveyor.app import create_app
from conveyor.config import Settings
from conveyor.core.db import standalone_engine
from conveyor.core.migrate import upgrade_async
from conveyor.providers.http import SHIPPED_SPECS

T = TypeVar("T")

POSTGRES_SERVER_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True, slots=True)
class Backend:
    """One database under test: ``kind`` is ``sqlite`` or ``postgresql``."""

    kind: str
    url: str


async def postgres_unavailable() -> str | None:
    """None if the PostgreSQL server answers, else why not (one line)."""
    engine = standalone_engine(POSTGRES_SERVER_URL)
    try:
        async with asyncio.timeout(5), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def fresh_database(kind: str, workdir: Path) -> AsyncIterator[Backend]:
    """A migrated, empty database of ``kind`` for one scenario, removed afterwards."""
    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade_async(url)
        yield Backend(kind, url)
        return
    name = f"conveyor_bench_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_async(url)
        yield Backend(kind, url)
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _postgres_admin(statement: str) -> None:
    engine = standalone_engine(POSTGRES_SERVER_URL)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def server_versions() -> dict[str, str]:
    """SQLite library version and the PostgreSQL server's version (or why it is missing)."""
    import sqlite3

    versions = {"SQLite": sqlite3.sqlite_version}
    reason = await postgres_unavailable()
    if reason is not None:
        versions["PostgreSQL"] = f"unavailable ({reason})"
        return versions
    engine = standalone_engine(POSTGRES_SERVER_URL)
    try:
        async with engine.connect() as conn:
            versions["PostgreSQL"] = str(await conn.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()
    return versions


def bench_settings(
    backend: Backend, data_dir: Path, simulator_url: str, **extra: object
) -> Settings:
    """Settings for both sides of a run: this database, these files, simulated providers."""
    values: dict[str, object] = {
        "env": "dev",
        "database_url": backend.url,
        "data_dir": data_dir,
        "simulate": True,
        "simulator_url": simulator_url,
        **extra,
    }
    if "secret_key" in Settings.model_fields:
        values["secret_key"] = "bench-secret-key-" + "0" * 32  # silences the dev warning
    return Settings.model_validate(values)


def load_sized_spec(provider: str, max_in_flight: int) -> str:
    """The shipped spec of ``provider`` as YAML, with ``max_in_flight`` and no rate cap."""
    data = yaml.safe_load((SHIPPED_SPECS / f"{provider}.yaml").read_text(encoding="utf-8"))
    limits = dict(data.get("limits") or {})
    limits.pop("requests_per_second", None)
    limits.pop("burst", None)
    limits["max_in_flight"] = max_in_flight
    data["limits"] = limits
    return yaml.safe_dump(data, sort_keys=False)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The explicitly set fields of ``settings`` as ``CONVEYOR_*`` variables, for a child."""
    env = {}
    for name in settings.model_fields_set:
        # pydantic-settings reads lists and maps as JSON; secrets must be given in clear.
        value = settings.model_dump(mode="json", include={name})[name]
        raw = getattr(settings, name)
        if isinstance(raw, dict):
            value = {
                k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in raw.items()
            }
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"CONVEYOR_{name.upper()}"] = text
    return env


class WorkerProcess:
    """``conveyor worker`` with given settings; RSS and CPU read through psutil."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        extra_env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        # Variables outside CONVEYOR_* settings, e.g. a provider's model-name override.
        self.extra_env = dict(extra_env or {})
        # Another way to start the same worker, e.g. under a profiler (bench._peer_profile).
        self.command = list(command or [str(Path(sys.executable).with_name("conveyor")), "worker"])
        self.process: subprocess.Popen[str] | None = None
        self.ps: psutil.Process | None = None

    async def start(self, timeout: float = 60.0) -> WorkerProcess:
        env = {
            **os.environ,
            **settings_environment(self.settings),
            **self.extra_env,
            # The benchmark's own settings only: never a developer's .env.
            "CONVEYOR_ENV_FILE": os.devnull,
        }
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.command,
            cwd=self.log_path.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.ps = psutil.Process(self.process.pid)
        line = await asyncio.wait_for(asyncio.to_thread(self._read_ready), timeout)
        if "ready" not in line:
            raise RuntimeError(f"worker did not start: {self.tail()}")
        return self

    def _read_ready(self) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        return self.process.stdout.readline()

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    async def __aenter__(self) -> WorkerProcess:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.kill()

    async def kill(self) -> None:
        """SIGKILL: for a run whose database is thrown away, so nothing needs releasing."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        self._log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving_api(settings: Settings) -> AsyncIterator[tuple[str, FastAPI]]:
    """``create_app`` without workers, served by uvicorn in this loop: (base URL, app)."""
    app = create_app(settings, workers=False, migrate=False)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("API server stopped during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("API server did not start")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def measure(run: Coroutine[Any, Any, T], render: Callable[[T], str]) -> str:
    """Run one benchmark's coroutine under uvloop, print and return its markdown section.

    The run reads no ``.env`` of the working directory: only what the benchmark sets counts.
    """
    os.environ.setdefault("CONVEYOR_ENV_FILE", os.devnull)
    import uvloop

    text = render(uvloop.run(run))
    print(text)
    return text
