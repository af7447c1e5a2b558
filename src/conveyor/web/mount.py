"""Adds the console to the application: its pages, forms, live routes and static files."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from conveyor.web.actions import router as actions_router
from conveyor.web.live import router as live_router
from conveyor.web.pages import router as pages_router
from conveyor.web.routing import SECURITY_HEADERS, STATIC_DIR


class ConsoleStatic(StaticFiles):
    """The console's own files, with the console's headers; revalidated by ETag."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = SECURITY_HEADERS["X-Content-Type-Options"]
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def mount_console(app: FastAPI) -> None:
    """``GET /`` and ``/console/…``; the API, ``/docs`` and the seed APIs are untouched."""
    app.mount("/console/static", ConsoleStatic(directory=STATIC_DIR), name="console-static")
    app.include_router(pages_router)
    app.include_router(actions_router)
    app.include_router(live_router)
