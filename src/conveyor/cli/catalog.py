"""The catalogue of a running server, and providers added as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

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
    print_table,
    providers_app,
    with_admin_database,
)
from conveyor.config import get_settings


@models_app.command("list")
def models_list(
    url: UrlOption = None,
    key: KeyOption = None,
    kind: Annotated[str | None, typer.Option(help="image, video, audio, text, vision…")] = None,
) -> None:
    """Every model (seed 003's list_ai_models): provider, kind, title, and whether it can
    run here, with how to enable it if not."""
    with api_client(url, key) as api:
        params = {"kind": kind} if kind else {}
        models = call(api.request_json, "GET", "/v1/models", params=params)
    rows = []
    for model in models:
        status = "yes" if model["available"] else f"no: {model['unavailable_reason']}"
        if model.get("simulated"):
            status += " (simulated)"
        rows.append((model["id"], model["provider"], model["kind"], model["title"], status))
    print_table(("id", "provider", "kind", "title", "available"), rows)


@models_app.command("show")
def models_show(model_id: str, url: UrlOption = None, key: KeyOption = None) -> None:
    """One model's catalogue entry (defaults, inputs, pros and cons)."""
    with api_client(url, key) as api:
        print_json(call(api.request_json, "GET", f"/v1/models/{model_id}"))


@providers_app.command("list")
def providers_list(url: UrlOption = None, key: KeyOption = None) -> None:
    """Providers with their models and health (circuit, in flight, error rate)."""
    with api_client(url, key) as api:
        providers = call(api.request_json, "GET", "/v1/providers")
    rows = []
    for p in providers:
        health = p.get("health") or {}
        rows.append(
            (
                p["name"],
                p["type"] + (" (simulated)" if p["simulated"] else ""),
                len(p["models"]),
                f"{len(p['available_models'])}/{len(p['models'])}",
                health.get("circuit", ""),
                health.get("in_flight", ""),
                f"{health['error_rate']:.0%}" if "error_rate" in health else "",
            )
        )
    print_table(
        ("name", "type", "models", "available", "circuit", "in flight", "error rate"),
        rows,
        whole=("name",),
    )


@providers_app.command("add")
def providers_add(
    spec_file: Annotated[Path, typer.Argument(help="A provider spec (YAML)", exists=True)],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a stored or shipped spec of that name")
    ] = False,
) -> None:
    """Validate a provider spec and store it; every node picks it up within 30 s."""
    from conveyor.catalog.aimodel import is_ai_model
    from conveyor.catalog.service import store_spec
    from conveyor.core.clock import SystemClock
    from conveyor.core.db import Database
    from conveyor.errors import ConveyorError
    from conveyor.providers.http import read_specs
    from conveyor.providers.spec import parse_spec_text, read_spec_yaml

    source = spec_file.read_text(encoding="utf-8")
    try:
        if is_ai_model(read_spec_yaml(source, source=spec_file.name)):
            raise fail("an AIModel row is added to a running server: POST /v1/providers")
        spec = parse_spec_text(source, source=spec_file.name)
    except ConveyorError as exc:
        raise fail(exc.message) from exc
    shipped = {s.name: s for s in read_specs()}

    async def save(db: Database) -> bool:
        async with db.write() as conn:
            return await store_spec(
                conn, spec, source, shipped=shipped, replace=replace, now=SystemClock().now()
            )

    try:
        created = with_admin_database(get_settings(), save)
    except ConveyorError as exc:
        raise fail(exc.message) from exc
    verb = "added" if created else "replaced"
    if spec.name in shipped:
        verb += " shipped"
    console.print(
        f"{verb} provider {spec.name} with models: {', '.join(m.id for m in spec.models)}"
    )


@providers_app.command("remove")
def providers_remove(name: Annotated[str, typer.Argument(help="Provider name")]) -> None:
    """Remove a stored spec; a shipped spec it replaced comes back (every node, within 30 s)."""
    from conveyor.catalog import repository
    from conveyor.core.db import Database
    from conveyor.providers.http import read_specs

    async def delete(db: Database) -> bool:
        async with db.write() as conn:
            return await repository.delete_spec(conn, name)

    shipped = {s.name for s in read_specs()}
    if not with_admin_database(get_settings(), delete):
        if name in shipped:
            raise fail(f"{name} is shipped with Conveyor and cannot be removed")
        raise fail(f"no stored provider {name!r}")
    back = f"; the shipped {name} spec is back" if name in shipped else ""
    console.print(f"removed provider {name}{back}")


@providers_app.command("test")
def providers_test(
    name: Annotated[str, typer.Argument(help="Provider name")],
    model: Annotated[str | None, typer.Option(help="Model id (default: the first)")] = None,
    input: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="Model input NAME=VALUE")
    ] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """One real round trip through a provider: submit, poll, store the result."""
    body: dict[str, object] = {"model": model, "inputs": parse_options(input or []) or None}
    err.print(f"testing provider {name}" + (f" with {json.dumps(body['inputs'])}" if input else ""))
    with api_client(url, key) as api:
        # The server waits up to 300 s for the provider's answer.
        result = call(
            api.request_json, "POST", f"/v1/providers/{name}/test", json=body, timeout=330
        )
    if result.get("simulated"):
        err.print(
            f"[yellow]simulated:[/yellow] the provider simulator answered, not {name} itself "
            "(CONVEYOR_SIMULATE is on); this shows the wiring works, not that a real key does",
            highlight=False,
        )
    if result["status"] != "completed":
        raise fail(result["message"])
    output = json.dumps(result["output"])[:300]
    console.print(f"{result['message']}: {output}", highlight=False, markup=False)
