"""The console's pages (``GET``): each reads through the services and renders a template.

Home is ``/`` (seed 004's upload page is its first screen); everything else lives under
``/console/`` so seed 004's own paths (``/models``, ``/health``, ``/history``…) stay theirs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from conveyor.deps import (
    CatalogServiceDep,
    ClientServiceDep,
    ConsoleServiceDep,
    ConsoleSessionDep,
    ConsoleViewer,
    OperatorServiceDep,
    ReadConn,
    SessionCodecDep,
)
from conveyor.jobs.models import JOB_STATUSES
from conveyor.web.routing import ConsoleRoute, render
from conveyor.web.service import ConsoleService

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

JobId = Annotated[str, Path(min_length=1, max_length=64)]
Cursor = Annotated[str | None, Query(max_length=500)]
MARKETPLACES = ("yandex-market", "ozon", "wildberries")
SOURCES = ("v1", "descriptions", "photos")
_SEED_UPLOAD_PATH = "/process_single"


def seed_api_mounted(request: Request) -> bool:
    """Whether seed 004's own endpoints are served here (the upload form then uses them)."""
    return any(getattr(route, "path", None) == _SEED_UPLOAD_PATH for route in request.app.routes)


def home_context(request: Request, console: ConsoleService, run: str | None) -> dict[str, Any]:
    photo_models = console.catalog.models(kind="background")
    return {
        "forms": console.run_forms(),
        "form": console.run_form(run),
        "seed_api": seed_api_mounted(request),
        "photo_recipe": console.has_photo_recipe(),
        "photo_models": photo_models,
        "marketplaces": MARKETPLACES,
        "submitted": {},
    }


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    run: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    return render(
        request,
        "home.html",
        viewer=viewer,
        badges=await console.badges(conn, viewer.client),
        **home_context(request, console, run),
    )


@router.get("/console", response_class=HTMLResponse)
async def console_root() -> Response:
    return RedirectResponse("/console/jobs", status_code=303)


@router.get("/console/jobs", response_class=HTMLResponse)
async def jobs_page(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
    recipe: Annotated[str | None, Query(max_length=64)] = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Cursor = None,
) -> Response:
    status = status if status in JOB_STATUSES else None
    page = await console.list_jobs(
        conn,
        viewer.client,
        status=status,
        recipe=recipe or None,
        source=source or None,
        cursor=cursor,
    )
    filters = {"status": status or "", "recipe": recipe or "", "source": source or ""}
    return render(
        request,
        "jobs.html",
        viewer=viewer,
        badges=await console.badges(conn, viewer.client),
        page=page,
        filters=filters,
        statuses=JOB_STATUSES,
        recipes=[r["name"] for r in console.catalog.recipes()],
        sources=SOURCES,
        active=any(j.active for j in page.jobs),
    )


@router.get("/console/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    job_id: JobId,
    cursor: Cursor = None,
) -> Response:
    view = await console.job(conn, viewer.client, job_id, cursor=cursor)
    return render(
        request,
        "job.html",
        viewer=viewer,
        badges=await console.badges(conn, viewer.client),
        view=view,
    )


@router.get("/console/jobs/{job_id}/items/{item_id}", response_class=HTMLResponse)
async def item_fragment(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    job_id: JobId,
    item_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> Response:
    view = await console.item(conn, viewer.client, job_id, item_id)
    return render(request, "_item.html", viewer=viewer, entry=view, job_id=job_id)


@router.get("/console/gallery", response_class=HTMLResponse)
async def gallery_page(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    cursor: Cursor = None,
) -> Response:
    images, next_cursor = await console.gallery(conn, viewer.client, cursor)
    return render(
        request,
        "gallery.html",
        viewer=viewer,
        badges=await console.badges(conn, viewer.client),
        images=images,
        next_cursor=next_cursor,
    )


@router.get("/console/models", response_class=HTMLResponse)
async def models_page(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    catalog: CatalogServiceDep,
) -> Response:
    models = sorted(catalog.models(), key=lambda m: (m["kind"], not m["available"], m["id"]))
    return render(
        request,
        "models.html",
        viewer=viewer,
        badges=await console.badges(conn, viewer.client),
        models=models,
    )


@router.get("/console/providers", response_class=HTMLResponse)
async def providers_page(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    catalog: CatalogServiceDep,
) -> Response:
    return render(
        request,
        "providers.html",
        viewer=viewer,
        badges=await console.badges(conn, viewer.client),
        providers=catalog.providers(),
    )


@router.get("/console/workers", response_class=HTMLResponse)
async def workers_page(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    operator: OperatorServiceDep,
) -> Response:
    overview = await operator.overview(conn)
    dead = await operator.dead_tasks(conn) if viewer.admin else []
    return render(
        request,
        "workers.html",
        viewer=viewer,
        badges=await console.badges(conn, viewer.client),
        overview=overview,
        dead=dead,
    )


@router.get("/console/keys", response_class=HTMLResponse)
async def keys_page(
    request: Request,
    viewer: ConsoleViewer,
    conn: ReadConn,
    console: ConsoleServiceDep,
    clients: ClientServiceDep,
) -> Response:
    keys = await clients.list_keys() if viewer.admin else []
    return render(
        request,
        "keys.html",
        viewer=viewer,
        badges=await console.badges(conn, viewer.client),
        keys=keys,
        created=None,
    )


@router.get("/console/sign-in", response_class=HTMLResponse)
async def sign_in_page(
    request: Request,
    session: ConsoleSessionDep,
    sessions: SessionCodecDep,
    clients: ClientServiceDep,
    next: Annotated[str, Query(max_length=2000)] = "/",
) -> Response:
    if session.key_id is not None and await clients.client_of_key(session.key_id) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(
        request,
        "sign_in.html",
        viewer=None,
        csrf_token=sessions.csrf_token(session),
        next=safe_next(next),
        open_mode=await clients.is_open(),
        error=None,
    )


def safe_next(target: str) -> str:
    """Only a path on this server: never an address elsewhere (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
