"""A private PostgreSQL cluster for tests that must stop or restart the server.

The suite's shared server (``CONVEYOR_TEST_POSTGRES_URL``) is never restarted: a test that
needs PostgreSQL to go away and come back starts its own cluster with ``initdb`` into a temp
directory, on its own port, listening on 127.0.0.1 only with its socket in that directory and
trust authentication. ``PostgresCluster.restart`` stops it (``immediate`` by default: the
server crashes as far as its clients can tell) and starts it again on the same port and data.

PostgreSQL refuses to run as root; under root the cluster belongs to the ``postgres`` user
and its programs run through ``runuser``. ``cluster_unavailable_reason`` says why no cluster
can be made here (no binaries, root without a ``postgres`` user); callers skip with it unless
``CONVEYOR_TEST_POSTGRES=required``, where they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

from sqlalchemy import text

from conveyor.core.db import standalone_engine

__all__ = [
    "PostgresCluster",
    "cluster_unavailable_reason",
    "create_database",
    "find_postgres_bin",
    "private_cluster",
]

StopMode = Literal["smart", "fast", "immediate"]
_SERVICE_USER = "postgres"


def find_postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb``, or what PATH has."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _run_as() -> str | None:
    """The user to run the server as: None for ourselves, ``postgres`` under root."""
    return _SERVICE_USER if os.geteuid() == 0 else None


def cluster_unavailable_reason() -> str | None:
    """Why a private cluster cannot be started on this machine, or None if it can."""
    if find_postgres_bin() is None:
        return "initdb not found (install the postgresql package: /usr/lib/postgresql/*/bin)"
    if _run_as() is not None:
        try:
            pwd.getpwnam(_SERVICE_USER)
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing (needed to run PostgreSQL)"
    return None


class PostgresCluster:
    """One cluster in ``directory`` (data, socket and log), served on 127.0.0.1:``port``."""

    def __init__(self, directory: Path, port: int) -> None:
        found = find_postgres_bin()
        if found is None:
            raise RuntimeError("initdb not found")
        self.bin = found
        self.directory = directory
        self.port = port
        self.data = directory / "data"
        self.log = directory / "server.log"
        self._user = _run_as()

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``postgres`` database as the ``postgres`` superuser."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        if self._user is None:
            return command
        return ["runuser", "-u", self._user, "--", *command]

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            self._command(program, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{log}"
            )

    def init(self) -> None:
        if self._user is not None:
            shutil.chown(self.directory, user=self._user, group=self._user)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        # fsync off: a test's data only has to survive the server, not the machine.
        options = (
            f"-k {self.directory} -h 127.0.0.1 -p {self.port} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        data, log = str(self.data), str(self.log)
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: StopMode = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def restart(self, mode: StopMode = "immediate", down_for: float = 0.0) -> float:
        """Stop (``immediate``: no goodbye to clients, crash recovery on start), stay down
        ``down_for`` seconds, start again; returns how long the server was away."""
        began = time.monotonic()
        self.stop(mode)
        if down_for > 0:
            time.sleep(down_for)
        self.start()
        return time.monotonic() - began

    def is_running(self) -> bool:
        result = subprocess.run(
            self._command("pg_ctl", "-D", str(self.data), "status"),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0


@contextmanager
def private_cluster(port: int) -> Iterator[PostgresCluster]:
    """A fresh running cluster on ``port``, stopped and deleted afterwards."""
    # Not pytest's tmp_path: under root that lies in a 0700 directory the server's own user
    # could not enter.
    directory = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
    cluster = PostgresCluster(directory, port)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.data.exists() and cluster.is_running():
            with suppress(RuntimeError):
                cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


async def create_database(cluster: PostgresCluster, name: str) -> str:
    """Create database ``name`` in ``cluster``; its SQLAlchemy URL."""
    engine = standalone_engine(cluster.url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{name}"
