"""Jobs on a running server, and `submit` with a progress bar."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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
    print_table,
    server_url,
)
from conveyor.cli.outputs import ItemInput, failure_lines, file_input, listed_input, unpack
from conveyor.client import Conveyor

# Each failed item gets a line, up to this many: a big batch's reasons are in `jobs show`.
FAILURES_SHOWN = 50


@jobs_app.command("list")
def jobs_list(
    url: UrlOption = None,
    key: KeyOption = None,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
) -> None:
    """List your most recent jobs."""
    with api_client(url, key) as api:
        page = call(api.list_jobs, status=status, limit=limit)
    rows = []
    for job in page["data"]:
        p = job["progress"]
        rows.append(
            (
                job["id"],
                job["status"],
                job["model"] or job["recipe"],
                f"{p['completed']}/{p['total']} ok, {p['failed']} failed",
                job["created_at"],
            )
        )
    print_table(("id", "status", "recipe", "progress", "created"), rows)


@jobs_app.command("show")
def jobs_show(job_id: str, url: UrlOption = None, key: KeyOption = None) -> None:
    """Show a job with its items' results."""
    with api_client(url, key) as api:
        print_json(call(api.results, job_id))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: UrlOption = None, key: KeyOption = None) -> None:
    """Cancel a job (finished items keep their results)."""
    with api_client(url, key) as api:
        job = call(api.cancel, job_id)
    console.print(f"job {job['id']} is {job['status']}")


@jobs_app.command("retry")
def jobs_retry(job_id: str, url: UrlOption = None, key: KeyOption = None) -> None:
    """Run a job's failed and cancelled items again, with progress until it finishes (exit
    status as for submit)."""
    with api_client(url, key) as api:
        answer = call(api.retry, job_id)
        err.print(f"retrying {answer['retried']} item(s) of job {job_id}")
        final = _follow(api, answer["job"])
        items = call(api.results, job_id)["items"]
        _report(final, items, [], server_url(url))
    _exit_for(final)


def _follow(api: Conveyor, job: dict[str, Any]) -> dict[str, Any]:
    """Show the job's progress on stderr until it finishes; returns the finished job."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task(job["status"], total=job["progress"]["total"])

        def update(progress: dict[str, Any]) -> None:
            done = progress["completed"] + progress["failed"] + progress["cancelled"]
            bar.update(task, completed=done, description=str(progress["status"]))

        final: dict[str, Any] = call(api.wait, job["id"], on_progress=update)
    return final


def _report(
    job: dict[str, Any], items: list[dict[str, Any]], inputs: list[ItemInput], url: str
) -> None:
    p = job["progress"]
    console.print(
        f"job {job['id']} {job['status']}: {p['completed']} completed, "
        f"{p['failed']} failed, {p['cancelled']} cancelled",
        highlight=False,
    )
    failures = failure_lines(items, inputs)
    for line in failures[:FAILURES_SHOWN]:
        console.print(f"  {line}", highlight=False, markup=False)
    if len(failures) > FAILURES_SHOWN:
        console.print(
            f"  … and {len(failures) - FAILURES_SHOWN} more: conveyor jobs show {job['id']}",
            highlight=False,
            markup=False,
        )
    console.print(f"results: {url}/v1/jobs/{job['id']}/results", highlight=False)


@app.command()
def submit(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="More files to upload, as with --file (so `--file a.jpg b.jpg` works)",
            metavar="FILES",
            show_default=False,
        ),
    ] = None,
    recipe: Annotated[str | None, typer.Option(help="Recipe to run")] = None,
    model: Annotated[str | None, typer.Option(help="Or: one model per item")] = None,
    items: Annotated[
        Path | None, typer.Option(help="JSON file with the list of items ('-' for stdin)")
    ] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option("--file", help="Upload files; one item per file: --file a.jpg b.jpg"),
    ] = None,
    file_field: Annotated[str, typer.Option(help="Item field that holds the file")] = "image",
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Job option NAME=VALUE")
    ] = None,
    languages: Annotated[str | None, typer.Option(help="Comma-separated language codes")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Submit at most once")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write each output here under its input's name, and results.json mapping "
            "inputs to outputs"
        ),
    ] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Create a job, show its progress until it finishes, and say where the results are.

    Exits 0 when every item completed, 2 when some failed or were cancelled, 1 when the job
    failed or was cancelled."""
    if (recipe is None) == (model is None):
        raise fail("give exactly one of --recipe or --model")
    entries: list[Any] = []
    inputs: list[ItemInput] = []
    if items is not None:
        text = sys.stdin.read() if str(items) == "-" else items.read_text()
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise fail(f"{items} is not JSON: {exc}") from exc
        if not isinstance(loaded, list):
            raise fail("the items file must hold a JSON list")
        entries.extend(loaded)
        inputs.extend(listed_input(items, index) for index in range(len(loaded)))
    uploads = [*(file or []), *(paths or [])]
    if missing := [str(path) for path in uploads if not path.is_file()]:
        raise fail(f"no such file: {', '.join(missing)}")
    if not entries and not uploads:
        raise fail("nothing to do: give --items or --file")
    base = server_url(url)
    with api_client(base, key) as api:
        for path in uploads:
            asset = call(api.upload, path)
            entries.append({file_field: {"asset_id": asset["id"]}})
            inputs.append(file_input(path))
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
        final = _follow(api, job)
        results = call(api.results, final["id"])["items"]
        _report(final, results, inputs, base)
        if out is not None:
            written = call(unpack, api, final, results, inputs, out)
            console.print(f"outputs in {out}, inputs mapped to outputs in {written}")
    _exit_for(final)


def _exit_for(job: dict[str, Any]) -> None:
    """Exit status a script can test: 0 every item completed; 2 the job completed with some
    items failed or cancelled (the SPEC calls that job ``completed``); 1 the job failed or
    was cancelled."""
    if job["status"] != "completed":
        raise typer.Exit(1)
    progress = job["progress"]
    if progress["failed"] or progress["cancelled"]:
        raise typer.Exit(2)
