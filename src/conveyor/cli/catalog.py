"""The catalogue of a running server, and providers added as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.cli.app import (
    KeyOption,
    UrlOption,
    api_client,
    call,
    console,
    err,
    fail,
    models_app,
    parse_options,
    print_json,
    providers_app,
    with_database,
)
from conveyor.config import get_settings


@models_app.command("list")
def models_list(
    url: UrlOption = "http://127.0.0.1:8000",
    key: KeyOption = None,
    kind: Annotated[str | None, typer.Option(help="image, video, audio, text, vision…")] = None,
) -> None:
    """Every model, with whether it can run here and how to enable it if not."""
    with api_client(url, key) as api:
        params = {"kind": kind} if kind else {}
        models = call(api.request_json, "GET", "/v1/models", params=params)
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
    with api_client(url, key) as api:
        print_json(call(api.request_json, "GET", f"/v1/models/{model_id}"))


@providers_app.command("list")
def providers_list(url: UrlOption = "http://127.0.0.1:8000", key: KeyOption = None) -> None:
    """Providers with their models and health (circuit, in flight, error rate)."""
    with api_client(url, key) as api:
        providers = call(api.request_json, "GET", "/v1/providers")
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

    source = spec_file.read_text(encoding="utf-8")
    try:
        spec = parse_spec_text(source, source=spec_file.name)
    except ProviderSpecError as exc:
        raise fail(exc.message) from exc

    async def save(db: Database) -> bool:
        async with db.write() as conn:
            return await repository.save_spec(conn, spec.name, source, SystemClock().now())

    created = with_database(get_settings(), save)
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
    with api_client(url, key) as api:
        providers = {p["name"]: p for p in call(api.request_json, "GET", "/v1/providers")}
        if name not in providers:
            raise fail(f"no provider {name!r}; known: {', '.join(sorted(providers))}")
        model_id = model or providers[name]["models"][0]
        entry = call(api.request_json, "GET", f"/v1/models/{model_id}")
        inputs = parse_options(input or [])
        for field in entry["spec"].get("inputs", []):
            if field.get("required") and field["name"] not in inputs:
                inputs[field["name"]] = "a red cube on a white background"
        if not inputs:
            inputs = {"prompt": "a red cube on a white background"}
        err.print(f"testing {model_id} with {json.dumps(inputs)}")
        job = call(api.create_job, model=model_id, items=[inputs], wait=300)
        results = call(api.results, job["id"])
    [item] = results["items"]
    if item["status"] != "completed":
        raise fail(f"{model_id} failed: {item['error']}")
    console.print(f"{model_id} works: {json.dumps(item['output'])[:300]}")
