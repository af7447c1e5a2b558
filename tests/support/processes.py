"""Worker processes for reliability tests: ``conveyor worker`` as a real child process that
can be killed with SIGKILL or stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60) -> None:
        executable = Path(sys.executable).parent / "conveyor"
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            str(executable), "worker", stdout=asyncio.subprocess.PIPE, stderr=log, env=self.env
        )
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"worker exited early; see {self.log_path}")
                if b"ready" in line:
                    return

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
