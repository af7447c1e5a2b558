"""Jobs on a running server, and `submit` with a progress bar."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conveyor.cli.app import (
    KeyOption,
    UrlOption,
    api_client,
    app,
    call,
    console,
    err,
    fail,
    jobs_app,
    parse_options,
    print_json,
)


@jobs_app.command("list")
def jobs_list(
    url: UrlOption = "http://127.0.0.1:8000",
    key: KeyOption = None,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
) -> None:
    """List your most recent jobs."""
    with api_client(url, key) as api:
        page = call(api.list_jobs, status=status, limit=limit)
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
    with api_client(url, key) as api:
        print_json(call(api.results, job_id))


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str, url: UrlOption = "http://127.0.0.1:8000", key: KeyOption = None
) -> None:
    """Cancel a job (finished items keep their results)."""
    with api_client(url, key) as api:
        job = call(api.cancel, job_id)
    console.print(f"job {job['id']} is {job['status']}")


@jobs_app.command("retry")
def jobs_retry(
    job_id: str, url: UrlOption = "http://127.0.0.1:8000", key: KeyOption = None
) -> None:
    """Run a job's failed items again."""
    with api_client(url, key) as api:
        answer = call(api.retry, job_id)
    console.print(f"retrying {answer['retried']} item(s) of job {job_id}")


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
        raise fail("give exactly one of --recipe or --model")
    entries: list[Any] = []
    if items is not None:
        text = sys.stdin.read() if str(items) == "-" else items.read_text()
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise fail(f"{items} is not JSON: {exc}") from exc
        if not isinstance(loaded, list):
            raise fail("the items file must hold a JSON list")
        entries.extend(loaded)
    with api_client(url, key) as api:
        for path in file or []:
            asset = call(api.upload, path)
            entries.append({file_field: {"asset_id": asset["id"]}})
        if not entries:
            raise fail("nothing to do: give --items or --file")
        job = call(
            api.create_job,
            recipe=recipe,
            model=model,
            items=entries,
            options=parse_options(option or []),
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

            final = call(api.wait, job["id"], on_progress=update)
            update(final)
        p = final["progress"]
        console.print(
            f"job {final['id']} {final['status']}: {p['completed']} completed, "
            f"{p['failed']} failed, {p['cancelled']} cancelled"
        )
        console.print(f"results: {url.rstrip('/')}/v1/jobs/{final['id']}/results")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            path = call(api.download, final["id"], out / f"job-{final['id']}.zip")
            console.print(f"downloaded: {path}")
        if final["status"] != "completed":
            raise typer.Exit(1)
