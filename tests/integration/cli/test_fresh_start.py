"""``conveyor serve`` and ``conveyor worker`` as real processes on a database that has never
been migrated (a fresh data directory on SQLite, an empty PostgreSQL database): each brings
the schema up to date before anything reads it, whatever address it listens on, and two
processes migrating one fresh database at once both succeed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from conveyor.core.db import standalone_engine
from tests.integration.catalog.test_catalog_api import NEW_PROVIDER
from tests.support import databases
from tests.support.processes import WorkerProcess
from tests.support.server import free_port

CONVEYOR = str(Path(sys.executable).parent / "conveyor")
HEAD_TABLES = {"provider_specs", "jobs", "items", "boxes"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings for a process whose database has no tables yet."""
    env = {
        "CONVEYOR_DATA_DIR": str(tmp_path / "data"),
        "CONVEYOR_ENV_FILE": str(tmp_path / "none.env"),
        "CONVEYOR_SECRET_KEY": "fresh-start-secret",
        "CONVEYOR_PROCESS_POOL_SIZE": "1",
        "CONVEYOR_SHUTDOWN_GRACE": "1",
    }
    if request.param == "sqlite":
        # The default: conveyor.db inside a data directory that does not exist yet.
        yield env
        return
    request.getfixturevalue("postgres_url")  # skips (or fails on CI) without PostgreSQL
    url = databases.create_postgres_database(migrate=False)
    try:
        yield {**env, "CONVEYOR_DATABASE_URL": url}
    finally:
        databases.drop_postgres_database(url)


def _database_url(env: dict[str, str]) -> str:
    default = f"sqlite+aiosqlite:///{env['CONVEYOR_DATA_DIR']}/conveyor.db"
    return env.get("CONVEYOR_DATABASE_URL", default)


async def _tables(url: str) -> set[str]:
    engine = standalone_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    finally:
        await engine.dispose()
    assert len(version) == 1
    return set(names)


@asynccontextmanager
async def serving(env: dict[str, str], *args: str, log: Path) -> AsyncIterator[httpx.AsyncClient]:
    """``conveyor serve`` in a child process; yields a client once /healthz answers."""
    port = free_port()
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            CONVEYOR,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
            stdout=sink,
            stderr=sink,
            env={**os.environ, **env},
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            # A safety net only: start-up ends when the port answers or the process dies.
            async with asyncio.timeout(120):
                while True:
                    if process.returncode is not None:
                        raise AssertionError(f"serve exited early:\n{log.read_text()}")
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            yield client
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _provider_specs_round_trip(client: httpx.AsyncClient) -> None:
    """The routes that read and write provider_specs, the table the bug report names."""
    listed = await client.get("/v1/providers")
    assert listed.status_code == 200, listed.text
    added = await client.post(
        "/v1/providers", content=NEW_PROVIDER, headers={"Content-Type": "application/yaml"}
    )
    assert added.status_code == 201, added.text
    read = await client.get("/v1/providers/acme")
    assert read.status_code == 200, read.text


@pytest.mark.parametrize("workers", [True, False], ids=["with-workers", "no-workers"])
async def test_serve_migrates_a_fresh_database(
    fresh_env: dict[str, str], tmp_path: Path, workers: bool
) -> None:
    args = () if workers else ("--no-workers",)
    async with serving(fresh_env, *args, log=tmp_path / "serve.log") as client:
        await _provider_specs_round_trip(client)
    assert await _tables(_database_url(fresh_env)) >= HEAD_TABLES


async def test_a_worker_migrates_a_fresh_database(
    fresh_env: dict[str, str], tmp_path: Path
) -> None:
    worker = WorkerProcess(fresh_env, tmp_path / "worker.log")
    try:
        await worker.start(timeout=120)
        worker.terminate()
        assert await worker.wait() == 0
    finally:
        await worker.close()
    assert await _tables(_database_url(fresh_env)) >= HEAD_TABLES


async def test_two_processes_migrating_one_fresh_database_both_succeed(
    fresh_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **fresh_env}
    logs = [tmp_path / f"migrate-{n}.log" for n in range(2)]
    processes = []
    for log in logs:
        with log.open("wb") as sink:
            processes.append(
                await asyncio.create_subprocess_exec(
                    CONVEYOR, "migrate", stdout=sink, stderr=sink, env=env
                )
            )
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), 120)
    assert codes == [0, 0], "\n".join(log.read_text() for log in logs)
    assert await _tables(_database_url(fresh_env)) >= HEAD_TABLES
