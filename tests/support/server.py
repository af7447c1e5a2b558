"""A real HTTP server for the app under test: uvicorn in the test's own event loop on a free
port, lifespan included. Tests talk to it over TCP like any client would."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: FastAPI, *, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on ``port`` (a free one unless given: a test that must name its own
    address in the settings, such as ``public_url``, picks it first)."""
    port = port or free_port()
    # As `conveyor serve` runs it: uvicorn does not rewrite the peer from X-Forwarded-For.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        # Generous: start-up migrates and starts workers, and CI machines are shared.
        async with asyncio.timeout(90):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during start-up")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 30)
        except TimeoutError:
            # Say where shutdown is stuck before failing: the stacks of every task.
            for pending in asyncio.all_tasks():
                pending.print_stack(limit=8, file=sys.stderr)
            raise


class ServerThread:
    """The app served from a background thread, for synchronous tests (fuzzing, SDK)."""

    def __init__(self, app: FastAPI) -> None:
        import threading

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            proxy_headers=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        import time

        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(30)
