"""The ``conveyor`` command line: run the service, manage keys, submit and follow jobs."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conveyor.client import ApiError, Conveyor
from conveyor.config import Settings, get_settings

app = typer.Typer(
    help="Conveyor: a self-hosted generation gateway.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once).", no_args_is_help=True)
jobs_app = typer.Typer(help="Jobs on a running server.", no_args_is_help=True)
queue_app = typer.Typer(help="The work queue: dead tasks and requeueing.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalogue of a running server.", no_args_is_help=True)
providers_app = typer.Typer(help="Providers: list, add as data, test.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
app.add_typer(queue_app, name="queue")
app.add_typer(models_app, name="models")
app.add_typer(providers_app, name="providers")

console = Console()
err = Console(stderr=True)

UrlOption = Annotated[str, typer.Option("--url", envvar="CONVEYOR_URL", help="Server base URL")]
KeyOption = Annotated[str | None, typer.Option("--key", envvar="CONVEYOR_API_KEY", help="API key")]


def _setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CONVEYOR_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _active_keys(settings: Settings) -> int:
    from conveyor.clients.service import ClientService
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database

    db = Database(settings.resolved_database_url, pool_size=1)
    try:
        return 0 if await ClientService(db, SystemClock()).is_open() else 1
    finally:
        await db.dispose()


def _migrate(settings: Settings) -> None:
    from conveyor.core.migrate import upgrade

    upgrade(settings.resolved_database_url)


@app.command()
def migrate() -> None:
    """Apply database migrations (also done by `serve` at start-up)."""
    _setup_logging()
    settings = get_settings()
    _migrate(settings)
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

    _setup_logging()
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
    _migrate(settings)
    exposed = not _is_loopback(settings.host) and not settings.insecure
    if exposed and asyncio.run(_active_keys(settings)) == 0:
        raise _fail(
            f"refusing to listen on {settings.host} with no API key: anyone could use it. "
            "Create one with `conveyor keys create NAME`, bind 127.0.0.1, or pass --insecure.",
            code=2,
        )
    uvicorn.run(
        create_app(settings, workers=not no_workers, migrate=False),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="info",
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Tasks in flight at once")] = None,
) -> None:
    """Run a worker only (claims work from the shared database)."""
    from conveyor.runtime import open_runtime

    _setup_logging()
    settings = get_settings()
    if concurrency is not None:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})

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

    _setup_logging()
    sim_config = SimConfig()
    if config is not None:
        try:
            sim_config = SimConfig.model_validate(yaml.safe_load(config.read_text()) or {})
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot use {config}: {exc}") from exc
    console.print(f"simulator on http://{host}:{port} (control: /_sim)")
    run_simulator(host, port, sim_config)


# -- keys ---------------------------------------------------------------------------------


def _client_service(settings: Settings) -> Any:
    from conveyor.clients.service import ClientService
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database

    return ClientService(Database(settings.resolved_database_url, pool_size=1), SystemClock())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Client name (created if new)")],
    label: Annotated[str, typer.Option(help="A name for this key")] = "default",
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    settings = get_settings()
    _migrate(settings)

    async def run() -> str:
        service = _client_service(settings)
        try:
            key, _ = await service.create_key(name, key_name=label)
            return str(key)
        finally:
            await service.db.dispose()

    key = asyncio.run(run())
    err.print(f"API key for client [bold]{name}[/bold] (shown once, keep it safe):")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefixes only)."""
    settings = get_settings()
    _migrate(settings)

    async def run() -> list[Any]:
        service = _client_service(settings)
        try:
            return list(await service.list_keys())
        finally:
            await service.db.dispose()

    table = Table("id", "client", "name", "prefix", "created", "last used", "revoked")
    for key in asyncio.run(run()):
        table.add_row(
            key.id,
            key.client,
            key.name,
            key.prefix,
            key.created_at.isoformat(timespec="seconds"),
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix")]) -> None:
    """Revoke a key; requests with it are refused from then on."""
    from conveyor.errors import ConveyorError

    settings = get_settings()
    _migrate(settings)

    async def run() -> Any:
        service = _client_service(settings)
        try:
            return await service.revoke_key(key)
        finally:
            await service.db.dispose()

    try:
        revoked = asyncio.run(run())
    except ConveyorError as exc:
        raise _fail(exc.message) from exc
    console.print(f"revoked {revoked.prefix}… of client {revoked.client}")


# -- jobs ---------------------------------------------------------------------------------


def _api(url: str, key: str | None) -> Conveyor:
    return Conveyor(url, api_key=key)


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        raise _fail(f"{exc.status} {exc.code}: {exc.message}") from exc
    except OSError as exc:
        raise _fail(f"cannot reach the server: {exc}") from exc


@jobs_app.command("list")
def jobs_list(
    url: UrlOption = "http://127.0.0.1:8000",
    key: KeyOption = None,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
) -> None:
    """List your most recent jobs."""
    with _api(url, key) as api:
        page = _call(api.list_jobs, status=status, limit=limit)
    table = Table("id", "status", "recipe", "progress", "created")
    for job in page["data"]:
        p = job["progress"]
        table.add_row(
            job["id"],
            job["status"],
            job["model"] or job["recipe"],
            f"{p['completed']}/{p['total']} ok, {p['failed']} failed",
            job["created_at"],
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, url: UrlOption = "http://127.0.0.1:8000", key: KeyOption = None) -> None:
    """Show a job with its items' results."""
    with _api(url, key) as api:
        _print_json(_call(api.results, job_id))


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str, url: UrlOption = "http://127.0.0.1:8000", key: KeyOption = None
) -> None:
    """Cancel a job (finished items keep their results)."""
    with _api(url, key) as api:
        job = _call(api.cancel, job_id)
    console.print(f"job {job['id']} is {job['status']}")


@jobs_app.command("retry")
def jobs_retry(
    job_id: str, url: UrlOption = "http://127.0.0.1:8000", key: KeyOption = None
) -> None:
    """Run a job's failed items again."""
    with _api(url, key) as api:
        answer = _call(api.retry, job_id)
    console.print(f"retrying {answer['retried']} item(s) of job {job_id}")


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise _fail(f"--option takes NAME=VALUE, got {pair!r}")
        try:
            options[name] = json.loads(raw)
        except ValueError:
            options[name] = raw
    return options


@app.command()
def submit(
    recipe: Annotated[str | None, typer.Option(help="Recipe to run")] = None,
    model: Annotated[str | None, typer.Option(help="Or: one model per item")] = None,
    items: Annotated[
        Path | None, typer.Option(help="JSON file with the list of items ('-' for stdin)")
    ] = None,
    file: Annotated[
        list[Path] | None, typer.Option("--file", help="Upload files; one item per file")
    ] = None,
    file_field: Annotated[str, typer.Option(help="Item field that holds the file")] = "image",
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Job option NAME=VALUE")
    ] = None,
    languages: Annotated[str | None, typer.Option(help="Comma-separated language codes")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Submit at most once")] = None,
    out: Annotated[Path | None, typer.Option(help="Download results.zip into this folder")] = None,
    url: UrlOption = "http://127.0.0.1:8000",
    key: KeyOption = None,
) -> None:
    """Create a job, show its progress until it finishes, and say where the results are."""
    if (recipe is None) == (model is None):
        raise _fail("give exactly one of --recipe or --model")
    entries: list[Any] = []
    if items is not None:
        text = sys.stdin.read() if str(items) == "-" else items.read_text()
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise _fail(f"{items} is not JSON: {exc}") from exc
        if not isinstance(loaded, list):
            raise _fail("the items file must hold a JSON list")
        entries.extend(loaded)
    with _api(url, key) as api:
        for path in file or []:
            asset = _call(api.upload, path)
            entries.append({file_field: {"asset_id": asset["id"]}})
        if not entries:
            raise _fail("nothing to do: give --items or --file")
        job = _call(
            api.create_job,
            recipe=recipe,
            model=model,
            items=entries,
            options=_parse_options(option or []),
            languages=[c.strip() for c in languages.split(",")] if languages else None,
            idempotency_key=idempotency_key,
        )
        err.print(f"job {job['id']} accepted with {job['progress']['total']} item(s)")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
        ) as bar:
            task = bar.add_task(job["status"], total=job["progress"]["total"])

            def update(data: dict[str, Any]) -> None:
                progress = data.get("progress", data)
                done = progress.get("completed", 0) + progress.get("failed", 0)
                bar.update(task, completed=done, description=str(data.get("status", "")))

            final = _call(api.wait, job["id"], on_progress=update)
            update(final)
        p = final["progress"]
        console.print(
            f"job {final['id']} {final['status']}: {p['completed']} completed, "
            f"{p['failed']} failed, {p['cancelled']} cancelled"
        )
        console.print(f"results: {url.rstrip('/')}/v1/jobs/{final['id']}/results")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            path = _call(api.download, final["id"], out / f"job-{final['id']}.zip")
            console.print(f"downloaded: {path}")
        if final["status"] != "completed":
            raise typer.Exit(1)


# -- catalogue ----------------------------------------------------------------------------


@models_app.command("list")
def models_list(
    url: UrlOption = "http://127.0.0.1:8000",
    key: KeyOption = None,
    kind: Annotated[str | None, typer.Option(help="image, video, audio, text, vision…")] = None,
) -> None:
    """Every model, with whether it can run here and how to enable it if not."""
    with _api(url, key) as api:
        params = {"kind": kind} if kind else {}
        models = _call(api.request_json, "GET", "/v1/models", params=params)
    table = Table("id", "kind", "title", "available")
    for model in models:
        status = "yes" if model["available"] else f"no: {model['unavailable_reason']}"
        if model.get("simulated"):
            status += " (simulated)"
        table.add_row(model["id"], model["kind"], model["title"], status)
    console.print(table)


@models_app.command("show")
def models_show(
    model_id: str, url: UrlOption = "http://127.0.0.1:8000", key: KeyOption = None
) -> None:
    """One model's catalogue entry (defaults, inputs, pros and cons)."""
    with _api(url, key) as api:
        _print_json(_call(api.request_json, "GET", f"/v1/models/{model_id}"))


@providers_app.command("list")
def providers_list(url: UrlOption = "http://127.0.0.1:8000", key: KeyOption = None) -> None:
    """Providers with their models and health (circuit, in flight, error rate)."""
    with _api(url, key) as api:
        providers = _call(api.request_json, "GET", "/v1/providers")
    table = Table("name", "type", "models", "available", "circuit", "in flight", "error rate")
    for p in providers:
        health = p.get("health") or {}
        table.add_row(
            p["name"],
            p["type"] + (" (simulated)" if p["simulated"] else ""),
            str(len(p["models"])),
            f"{len(p['available_models'])}/{len(p['models'])}",
            str(health.get("circuit", "")),
            str(health.get("in_flight", "")),
            f"{health['error_rate']:.0%}" if "error_rate" in health else "",
        )
    console.print(table)


@providers_app.command("add")
def providers_add(
    spec_file: Annotated[Path, typer.Argument(help="A provider spec (YAML)", exists=True)],
) -> None:
    """Validate a provider spec and store it; every node picks it up within 30 s."""
    from conveyor.catalog import repository
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database
    from conveyor.providers.spec import ProviderSpecError, parse_spec_text

    settings = get_settings()
    _migrate(settings)
    source = spec_file.read_text(encoding="utf-8")
    try:
        spec = parse_spec_text(source, source=spec_file.name)
    except ProviderSpecError as exc:
        raise _fail(exc.message) from exc

    async def run() -> bool:
        db = Database(settings.resolved_database_url, pool_size=1)
        try:
            async with db.write() as conn:
                return await repository.save_spec(conn, spec.name, source, SystemClock().now())
        finally:
            await db.dispose()

    created = asyncio.run(run())
    verb = "added" if created else "replaced"
    console.print(
        f"{verb} provider {spec.name} with models: {', '.join(m.id for m in spec.models)}"
    )


@providers_app.command("test")
def providers_test(
    name: Annotated[str, typer.Argument(help="Provider name")],
    model: Annotated[str | None, typer.Option(help="Model id (default: the first)")] = None,
    input: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="Model input NAME=VALUE")
    ] = None,
    url: UrlOption = "http://127.0.0.1:8000",
    key: KeyOption = None,
) -> None:
    """One real round trip through a provider: submit, poll, store the result."""
    with _api(url, key) as api:
        providers = {p["name"]: p for p in _call(api.request_json, "GET", "/v1/providers")}
        if name not in providers:
            raise _fail(f"no provider {name!r}; known: {', '.join(sorted(providers))}")
        model_id = model or providers[name]["models"][0]
        entry = _call(api.request_json, "GET", f"/v1/models/{model_id}")
        inputs = _parse_options(input or [])
        for field in entry["spec"].get("inputs", []):
            if field.get("required") and field["name"] not in inputs:
                inputs[field["name"]] = "a red cube on a white background"
        if not inputs:
            inputs = {"prompt": "a red cube on a white background"}
        err.print(f"testing {model_id} with {json.dumps(inputs)}")
        job = _call(api.create_job, model=model_id, items=[inputs], wait=300)
        results = _call(api.results, job["id"])
    [item] = results["items"]
    if item["status"] != "completed":
        raise _fail(f"{model_id} failed: {item['error']}")
    console.print(f"{model_id} works: {json.dumps(item['output'])[:300]}")


# -- queue --------------------------------------------------------------------------------


@queue_app.command("dead")
def queue_dead(limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """Tasks that ran out of attempts, with their last error."""
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database
    from conveyor.queue import QueueRepository

    settings = get_settings()

    async def run() -> list[Any]:
        db = Database(settings.resolved_database_url, pool_size=1)
        try:
            async with db.read() as conn:
                repo = QueueRepository(db.dialect, SystemClock())
                return await repo.list_tasks(conn, status="dead", limit=limit)
        finally:
            await db.dispose()

    table = Table("id", "handler", "attempts", "payload", "last error")
    for task in asyncio.run(run()):
        error = (task.last_error or "").splitlines()[0][:80] if task.last_error else ""
        table.add_row(
            str(task.id), task.handler, str(task.attempts), json.dumps(task.payload), error
        )
    console.print(table)


@queue_app.command("requeue")
def queue_requeue(task_id: int) -> None:
    """Run a dead task again from scratch."""
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database
    from conveyor.queue import QueueRepository

    settings = get_settings()

    async def run() -> bool:
        db = Database(settings.resolved_database_url, pool_size=1)
        try:
            async with db.write() as conn:
                return await QueueRepository(db.dialect, SystemClock()).requeue(conn, task_id)
        finally:
            await db.dispose()

    if not asyncio.run(run()):
        raise _fail(f"task {task_id} is not a dead task")
    console.print(f"task {task_id} queued again")


def main() -> None:
    app()
