"""Running Conveyor: serve, worker, migrate, the simulator."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.app import (
    app,
    console,
    fail,
    migrate_database,
    setup_logging,
    with_database,
)
from conveyor.config import get_settings

if TYPE_CHECKING:
    from conveyor.core.db import Database


async def _has_active_keys(db: Database) -> bool:
    from conveyor.clients.service import ClientService
    from conveyor.core.clock import SystemClock

    return await ClientService(db, SystemClock()).has_active_keys()


@app.command()
def migrate() -> None:
    """Apply database migrations (also done by `serve` and `worker` at start-up)."""
    setup_logging()
    settings = get_settings()
    migrate_database(settings)
    console.print(f"database at {settings.resolved_database_url.split('@')[-1]} is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind")] = None,
    no_workers: Annotated[bool, typer.Option("--no-workers", help="API only")] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback address without API keys")
    ] = False,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Point remote providers at the simulator")
    ] = False,
) -> None:
    """Run the API (and, unless --no-workers, workers) in this process."""
    import uvicorn

    from conveyor.app import create_app
    from conveyor.cli.banner import announce

    setup_logging()
    updates: dict[str, Any] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    if simulate:
        updates["simulate"] = True
    if insecure:
        updates["insecure"] = True
    settings = get_settings().model_copy(update=updates)
    # Always, whatever the address: a fresh data directory or database gets its schema here
    # (concurrent starts take turns, see conveyor.core.migrate).
    migrate_database(settings)
    if not settings.open_mode_allowed and not with_database(
        settings, _has_active_keys, migrate=False
    ):
        raise fail(
            f"refusing to listen on {settings.host} with no API key: anyone could use it. "
            "Create one with `conveyor keys create NAME`, bind 127.0.0.1, or pass --insecure.",
            code=2,
        )
    uvicorn.run(
        announce(create_app(settings, workers=not no_workers, migrate=False)),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="info",
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
        # The peer address stays the peer's: which proxies' X-Forwarded-For to believe is
        # Conveyor's setting (CONVEYOR_PHOTOS_TRUSTED_PROXIES), not uvicorn's loopback default.
        proxy_headers=False,
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Tasks in flight at once")] = None,
) -> None:
    """Run a worker only (claims work from the shared database); migrates it first, as
    `serve` does, so workers and servers can start in any order."""
    from conveyor.runtime import open_runtime

    setup_logging()
    settings = get_settings()
    if concurrency is not None:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
    migrate_database(settings)

    async def run() -> None:
        runtime = await open_runtime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            worker = await runtime.start_workers()
            print(f"worker {worker.id} ready", flush=True)
            await stop.wait()
        finally:
            await runtime.close()

    import uvloop

    uvloop.run(run())


@app.command()
def sim(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8100,
    config: Annotated[
        Path | None, typer.Option(help="YAML or JSON file with simulator settings")
    ] = None,
) -> None:
    """Run the provider simulator (gen-api, Kie.ai, Replicate, fal, OpenAI-compatible)."""
    import yaml

    from conveyor.sim import SimConfig, run_simulator

    setup_logging()
    sim_config = SimConfig()
    if config is not None:
        try:
            sim_config = SimConfig.model_validate(yaml.safe_load(config.read_text()) or {})
        except (OSError, ValueError) as exc:
            raise fail(f"cannot use {config}: {exc}") from exc
    run_simulator(host, port, sim_config)
