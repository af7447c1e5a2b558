"""Mounts every router: the native API, system endpoints, docs, compatibility APIs."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from conveyor.assets.endpoints import router as assets_router
from conveyor.catalog.endpoints import router as catalog_router
from conveyor.clients.endpoints import router as keys_router
from conveyor.compat.boxes.endpoints import router as boxes_router
from conveyor.compat.descriptions.endpoints import router as descriptions_router
from conveyor.compat.media.endpoints import router as media_router
from conveyor.compat.photos.endpoints import router as photos_router
from conveyor.execution.endpoints import router as callbacks_router
from conveyor.jobs.endpoints import router as jobs_router
from conveyor.system.endpoints import router as system_router
from conveyor.web.mount import mount_console

_DOCS_STATIC = Path(fastapi_offline.__file__).parent / "static"


def mount_routers(app: FastAPI) -> None:
    app.include_router(system_router)
    app.include_router(jobs_router)
    app.include_router(assets_router)
    app.include_router(catalog_router)
    app.include_router(keys_router)
    app.include_router(descriptions_router)
    app.include_router(callbacks_router)
    app.include_router(boxes_router)
    app.include_router(media_router)
    # Seed 004 at the root (/process_single, /models, /health, /history...); GET / is the
    # web console's.
    app.include_router(photos_router)
    mount_docs(app)
    mount_console(app)


def mount_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc from files installed with the package: no CDN, works offline."""
    app.mount("/_docs", StaticFiles(directory=_DOCS_STATIC), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/_docs/swagger-ui-bundle.js",
            swagger_css_url="/_docs/swagger-ui.css",
            swagger_favicon_url="/_docs/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url="/_docs/redoc.standalone.js",
            redoc_favicon_url="/_docs/favicon.png",
            with_google_fonts=False,
        )
