"""``create_app()``: the ASGI application with its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from conveyor import __version__
from conveyor.api import mount_routers
from conveyor.compat.photos.endpoints import PHOTO_ERRORS, photo_body_limits, photo_refusal_for
from conveyor.config import Settings, get_settings
from conveyor.core.clock import Clock
from conveyor.core.http import BodySizeLimit, LimitSetting, RequestGuard, install_error_handlers
from conveyor.core.migrate import upgrade_async
from conveyor.core.openapi import document_error_answers
from conveyor.providers.base import ModelAdapter
from conveyor.runtime import open_runtime

log = logging.getLogger(__name__)

DESCRIPTION = """
Conveyor turns AI generation into reliable jobs: one request gets its answer in the same
call, a batch of thousands gets a job with live progress. Authenticate with
`Authorization: Bearer <API key>` (create one with `conveyor keys create NAME`).
Errors are JSON: `{"error": CODE, "message": "...", "code": HTTP status}`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    workers: bool = True,
    migrate: bool = True,
    extra_adapters: Iterable[ModelAdapter] = (),
    clock: Clock | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await upgrade_async(settings.resolved_database_url)
        runtime = await open_runtime(settings, clock=clock, extra_adapters=extra_adapters)
        app.state.runtime = runtime
        try:
            if workers:
                await runtime.start_workers()
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="Conveyor",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Inside the size limit (added later is outer): the guard reads text bodies whole, and
    # only bodies the limit let through.
    app.add_middleware(RequestGuard, render_for=photo_refusal_for)
    app.add_middleware(
        BodySizeLimit,
        body_limit=settings.max_json_body_bytes,
        upload_limit=settings.max_upload_bytes + 64 * 1024,
        paths=photo_body_limits(settings),
        body_setting=LimitSetting(settings.max_json_body_bytes, "CONVEYOR_MAX_JSON_BODY_BYTES"),
        upload_setting=LimitSetting(settings.max_upload_bytes, "CONVEYOR_MAX_UPLOAD_BYTES"),
    )
    mount_routers(app)
    document_error_answers(app, [PHOTO_ERRORS])
    return app
