"""Conveyor's own processes for reliability tests: ``conveyor worker`` and ``conveyor serve``
as real child processes that can be killed with SIGKILL or stopped with SIGTERM, and
``run_cli`` for the one-shot commands an operator types (``migrate``, ``keys create``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx


def conveyor_executable() -> str:
    """The ``conveyor`` script of the interpreter running the tests (this checkout's venv)."""
    return str(Path(sys.executable).parent / "conveyor")


async def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run ``conveyor *args`` to the end; its standard output, or an error with its output."""
    process = await asyncio.create_subprocess_exec(
        conveyor_executable(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    if process.returncode != 0:
        raise RuntimeError(
            f"conveyor {' '.join(args)} exited {process.returncode}:\n"
            f"{stdout.decode(errors='replace')}{stderr.decode(errors='replace')}"
        )
    return stdout.decode()


class _ChildProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class WorkerProcess(_ChildProcess):
    """``conveyor worker``; ``start`` returns once it prints that it is ready."""

    async def start(self, timeout: float = 60) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                conveyor_executable(),
                "worker",
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self.env,
            )
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"worker exited early; see {self.log_path}")
                if b"ready" in line:
                    return


class ServeProcess(_ChildProcess):
    """``conveyor serve *args`` on ``port``; ``start`` returns once ``/healthz`` answers."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int, *args: str) -> None:
        super().__init__(env, log_path)
        self.port = port
        self.args = args
        self.base_url = f"http://127.0.0.1:{port}"

    async def start(self, timeout: float = 60) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                conveyor_executable(),
                "serve",
                "--port",
                str(self.port),
                *self.args,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
            )
        async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"serve exited early; see {self.log_path}")
                try:
                    if (await client.get(f"{self.base_url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
