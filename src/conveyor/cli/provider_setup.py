"""``conveyor providers setup kie``: seed 003's ``setup_kie_ai``, checked instead of assumed.

It finds the key (``--api-key``, else the variables the Kie spec names), checks it with
Kie's cheapest authenticated call (``GET /api/v1/chat/credit``, which answers the account's
credits) and says what it enables: the Kie models of this installation (the shipped spec, or
the one stored over ``/v1/providers``) and whether callbacks are on. What it could not check
it says so, with the reason; it never stores the key (the server reads it from its
environment, as every provider key).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from conveyor.cli.app import console, err, fail, providers_app, with_database
from conveyor.config import Settings, get_settings

if TYPE_CHECKING:
    from conveyor.core.db import Database
    from conveyor.providers.http import HttpOverrides
    from conveyor.providers.spec import ProviderSpec

CREDIT_PATH = "/api/v1/chat/credit"
SUPPORTED = ("kie",)


@providers_app.command("setup")
def providers_setup(
    provider: Annotated[str, typer.Argument(help="The provider to set up: kie")],
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="The provider's key (default: CONVEYOR_KIE_API_KEY)"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the provider")] = 15.0,
) -> None:
    """Check a provider's key with a cheap call and list what it enables."""
    # Imported here: every other command would pay for the provider engine at start-up.
    from conveyor.providers.http import HttpOverrides, resolve_base_url

    if provider not in SUPPORTED:
        raise fail(f"setup knows {', '.join(SUPPORTED)}; other providers: 'providers test NAME'")
    settings = get_settings()
    spec = _kie_spec(settings)
    overrides = HttpOverrides(simulate=settings.simulate, simulator_url=settings.simulator_url)
    base_url = resolve_base_url(spec, overrides)
    key, origin = _key(spec, api_key, overrides)
    if key is None:
        names = " or ".join(spec.auth.key_env)
        raise fail(f"no {spec.title} key: pass --api-key or set {names}")
    where = "the provider simulator" if settings.simulate else base_url
    err.print(f"checking the {spec.title} key from {origin} against {where} …")
    credits = _check(base_url, key, timeout)
    console.print(f"[green]ok[/green]: the key works; the account has {credits} credits")
    _enables(spec, settings)
    if origin == "--api-key":
        env_name = spec.auth.key_env[0]
        console.print(f"to use it, set {env_name}=<the key> in the server's environment or .env")


def _kie_spec(settings: Settings) -> ProviderSpec:
    """The Kie spec the server uses: one stored over HTTP wins over the shipped one."""
    from conveyor.providers.http import read_specs

    shipped = next(spec for spec in read_specs() if spec.name == "kie")
    try:
        stored = with_database(settings, _stored_kie)
    except Exception as exc:  # the database may be elsewhere; the shipped spec still tells
        err.print(
            f"[yellow]could not read stored provider specs[/yellow] ({exc}); "
            "listing the shipped Kie models"
        )
        return shipped
    return stored or shipped


async def _stored_kie(db: Database) -> ProviderSpec | None:
    from conveyor.catalog import repository
    from conveyor.providers.spec import parse_spec_text

    async with db.read() as conn:
        source = await repository.get_spec(conn, "kie")
    return parse_spec_text(source, source="kie (stored)") if source else None


def _key(spec: ProviderSpec, given: str | None, overrides: HttpOverrides) -> tuple[str | None, str]:
    if overrides.simulate:
        return overrides.simulator_key, "simulate mode (the simulator's key)"
    if given:
        return given, "--api-key"
    for name in spec.auth.key_env:
        if os.environ.get(name):
            return os.environ[name], name
    return None, ""


def _check(base_url: str, key: str, timeout: float) -> Any:
    url = base_url.rstrip("/") + CREDIT_PATH
    try:
        answer = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise fail(
            f"could not check the key: {url} did not answer ({type(exc).__name__}: {exc}); "
            "nothing was changed (set CONVEYOR_KIE_BASE_URL if Kie is reached another way)",
            code=2,
        ) from exc
    try:
        body = answer.json()
    except ValueError:
        body = None
    # Kie may answer HTTP 200 with the real status in the body's "code".
    code = body.get("code") if isinstance(body, dict) else None
    status = code if isinstance(code, int) else answer.status_code
    message = body.get("msg") if isinstance(body, dict) else None
    if status == 401:
        raise fail("the key was refused: 401 invalid API key")
    if status == 402:
        raise fail("the key works but the account has no credits left (402): top it up")
    if status != 200 or not isinstance(body, dict):
        raise fail(
            f"could not check the key: {url} answered {status}"
            + (f" ({message})" if message else ""),
            code=2,
        )
    return body.get("data")


def _enables(spec: ProviderSpec, settings: Settings) -> None:
    from conveyor.providers.callbacks import provider_secret

    console.print(f"{spec.title} models this enables:")
    for model in spec.models:
        state = "" if model.active else " (switched off: active false)"
        console.print(f"  {model.id:<28} {model.kind:<6} {model.title}{state}")
    callback = next((m.callback for m in spec.models if m.callback is not None), None)
    if not settings.public_url:
        console.print(
            "callbacks: off (set CONVEYOR_PUBLIC_URL so Kie can call back; polling works without)"
        )
    elif callback is not None and provider_secret(callback, os.environ):
        console.print(f"callbacks: on, to {settings.public_url}, signatures checked")
    else:
        secret = callback.secret_env[0] if callback and callback.secret_env else "the secret"
        console.print(
            f"callbacks: on, to {settings.public_url}; set {secret} (Kie's webhookHmacKey) "
            "to check Kie's signature too"
        )
