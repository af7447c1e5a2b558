"""The few lines `conveyor serve` prints once it has started: where to point a browser or
client, whether requests need a key, where the data lives, and which models can run here
(with the most common reasons the others cannot).

``announce`` wraps the app's lifespan, so the banner is built from the running service (its
catalogue and its keys) after start-up, just before uvicorn starts accepting connections.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from fastapi import FastAPI

    from conveyor.config import Settings
    from conveyor.runtime import Runtime

REASONS_SHOWN = 3


def listen_url(settings: Settings) -> str:
    """The address to open: a wildcard bind is reached on loopback from this machine."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def database_label(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite {url.database}"
    return url.render_as_string(hide_password=True)


def storage_label(settings: Settings) -> str:
    if settings.storage == "s3":
        return f"S3 bucket {settings.s3_bucket}"
    return str(settings.resolved_storage_path)


def models_line(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """How many models can run here, and the most common reasons the others cannot."""
    available = sum(1 for m in models if m.get("available"))
    lines = [f"models:    {available} of {len(models)} available (conveyor models list)"]
    reasons = Counter(
        str(m.get("unavailable_reason") or "unavailable") for m in models if not m.get("available")
    )
    for reason, count in reasons.most_common(REASONS_SHOWN):
        lines.append(f"           {count} not: {reason}")
    if len(reasons) > REASONS_SHOWN:
        rest = sum(count for _, count in reasons.most_common()[REASONS_SHOWN:])
        lines.append(f"           {rest} more for other reasons")
    return lines


def banner_lines(
    settings: Settings, *, active_keys: bool, models: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The banner as lines of plain text."""
    url = listen_url(settings)
    if active_keys:
        access = "API keys required (Authorization: Bearer cvk_...)"
    else:
        access = (
            "open mode: no API key exists, requests run as the `local` client "
            "(`conveyor keys create NAME` ends it)"
        )
    return [
        f"Conveyor on {url}  (console {url}/, API docs {url}/docs)",
        f"access:    {access}",
        f"database:  {database_label(settings.resolved_database_url)}",
        f"files:     {storage_label(settings)}",
        *models_line(models),
        *(
            ["providers: remote ones answered by the provider simulator"]
            if settings.simulate
            else []
        ),
    ]


async def describe(runtime: Runtime) -> list[str]:
    """The banner of a started service."""
    return banner_lines(
        runtime.settings,
        active_keys=await runtime.clients.has_active_keys(),
        models=runtime.catalog.models(),
    )


Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def _to_stdout(text: str) -> None:
    print(text, flush=True)


def announce(app: FastAPI, write: Callable[[str], None] = _to_stdout) -> FastAPI:
    """``app`` whose start-up ends by writing the banner with ``write``."""
    started: Lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        async with started(running) as state:
            write("\n".join(await describe(running.state.runtime)))
            yield state

    app.router.lifespan_context = lifespan
    return app
