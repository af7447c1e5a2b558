"""The console's forms (``POST``): each checks its CSRF token, calls a service, redirects.

Forms work without JavaScript: a post answers ``303 See Other`` to the page that shows
what changed (post/redirect/get), or re-renders its page with the problem in words.
Uploads store their bytes first, outside any transaction, then the asset rows and the job
are written in one short transaction; the job request is validated before any byte is
stored, so a refused form leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from conveyor.assets.models import Asset
from conveyor.assets.service import AssetService
from conveyor.clients.service import Client
from conveyor.core.db import Database
from conveyor.deps import (
    AssetServiceDep,
    ClientServiceDep,
    ConsoleAdmin,
    ConsoleForm,
    ConsoleServiceDep,
    ConsoleViewer,
    DatabaseDep,
    JobServiceDep,
    OperatorServiceDep,
    SessionCodecDep,
    WriteConn,
)
from conveyor.errors import ConveyorError, NotFound, ValidationFailed
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService
from conveyor.web.forms import RunForm, read_values
from conveyor.web.pages import home_context, safe_next
from conveyor.web.routing import ConsoleRoute, render

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

JobId = Annotated[str, Path(min_length=1, max_length=64)]
# Stands for a file not stored yet while a job request is validated.
_PLACEHOLDER_ASSET = "00000000-0000-4000-8000-000000000000"
_READ_CHUNK = 1 << 20
_KEY_FIELDS = ("name", "filename")


def _see(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def _texts(form: FormData) -> dict[str, list[str]]:
    return {key: [v for v in form.getlist(key) if isinstance(v, str)] for key in form}


def _uploads(form: FormData, name: str) -> list[UploadFile]:
    return [f for f in form.getlist(name) if isinstance(f, UploadFile) and f.filename]


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_READ_CHUNK):
        yield chunk


def _run_items(
    run_form: RunForm, values: dict[str, Any], uploads: dict[str, list[UploadFile]], ids: list[str]
) -> list[dict[str, Any]]:
    """One item, or one per file when a single-file field got several (a batch).

    ``ids`` are the stored files' asset ids in the order of ``uploads``."""
    queue = iter(ids)
    names = {f.name for f in run_form.item_fields}
    key = next((k for k in _KEY_FIELDS if k in names), None)
    batch_field = next(
        (f.name for f in run_form.file_fields if f.kind == "file" and len(uploads[f.name]) > 1),
        None,
    )
    count = len(uploads[batch_field]) if batch_field else 1
    items: list[dict[str, Any]] = [dict(values) for _ in range(count)]
    for field in run_form.file_fields:
        files = uploads[field.name]
        refs = [{"asset_id": next(queue)} for _ in files]
        for index, item in enumerate(items):
            if field.kind == "files" and refs:
                item[field.name] = refs
            elif field.name == batch_field:
                item[field.name] = refs[index]
                filename = files[index].filename
                if key is not None and not item.get(key) and filename:
                    item[key] = filename[:200]
            elif refs:
                item[field.name] = refs[0]
    return items


async def _store(assets: AssetService, client: Client, files: list[UploadFile]) -> list[Asset]:
    return [
        await assets.ingest(client.id, _chunks(upload), filename=upload.filename)
        for upload in files
    ]


async def _create(
    db: Database,
    jobs: JobService,
    assets: AssetService,
    client: Client,
    stored: list[Asset],
    body: JobCreate,
) -> str:
    submission = jobs.prepare(body)
    async with db.write() as conn:
        await assets.add(conn, *stored)
        created = await jobs.create(conn, client, submission)
    return created.job.id


@router.post("/console/run")
async def run_job(
    request: Request,
    viewer: ConsoleViewer,
    form: ConsoleForm,
    db: DatabaseDep,
    console: ConsoleServiceDep,
    jobs: JobServiceDep,
    assets: AssetServiceDep,
) -> Response:
    target = str(form.get("run") or "")
    run_form = console.run_form(target)
    if run_form is None:
        raise NotFound(f"nothing to run called {target!r}")
    texts = _texts(form)
    try:
        values = read_values(run_form.item_fields, texts, "item.")
        options = read_values(run_form.option_fields, texts, "option.")
        uploads = {f.name: _uploads(form, "item." + f.name) for f in run_form.file_fields}
        missing = [f.label for f in run_form.file_fields if f.required and not uploads[f.name]]
        if missing:
            raise ValidationFailed(f"choose a file for: {', '.join(missing)}")
        files = [upload for field in run_form.file_fields for upload in uploads[field.name]]
        # Validate with stand-ins first: a refused request stores nothing.
        stand_ins = [_PLACEHOLDER_ASSET] * len(files)
        jobs.prepare(
            console.run_body(run_form, _run_items(run_form, values, uploads, stand_ins), options)
        )
        stored = await _store(assets, viewer.client, files)
        items = _run_items(run_form, values, uploads, [a.id for a in stored])
        job_id = await _create(
            db, jobs, assets, viewer.client, stored, console.run_body(run_form, items, options)
        )
    except ConveyorError as exc:
        async with db.read() as conn:
            badges = await console.badges(conn, viewer.client)
        context = home_context(request, console, target)
        context["submitted"] = {k: v[0] for k, v in texts.items() if v}
        return render(
            request,
            "home.html",
            viewer=viewer,
            badges=badges,
            status_code=exc.status_code if exc.status_code < 500 else 400,
            run_error=exc.message,
            **context,
        )
    return _see(f"/console/jobs/{job_id}")


@router.post("/console/photo")
async def run_photo(
    request: Request,
    viewer: ConsoleViewer,
    form: ConsoleForm,
    db: DatabaseDep,
    console: ConsoleServiceDep,
    jobs: JobServiceDep,
    assets: AssetServiceDep,
) -> Response:
    """Seed 004's upload form without JavaScript: the photo becomes a ``product-photo`` job."""
    try:
        if not console.has_photo_recipe():
            raise ValidationFailed(
                "product photos need the product-photo recipe, which this server does not "
                "have yet; run image-finish below instead",
                status_code=409,
                code="RECIPE_MISSING",
            )
        uploads = _uploads(form, "file")
        if len(uploads) != 1:
            raise ValidationFailed("choose one photo (PNG, JPEG or WEBP)")

        def body(asset_id: str) -> JobCreate:
            return console.photo_body(
                asset_id,
                uploads[0].filename,
                enhance=bool(form.get("enhance")),
                model_id=str(form.get("modelId") or ""),
                custom_prompt=bool(form.get("custom_prompt")),
                custom_prompt_text=str(form.get("custom_prompt_text") or ""),
                lora_version=str(form.get("lora_version") or ""),
                marketplace=str(form.get("marketplace") or ""),
            )

        jobs.prepare(body(_PLACEHOLDER_ASSET))
        stored = await _store(assets, viewer.client, uploads)
        job_id = await _create(db, jobs, assets, viewer.client, stored, body(stored[0].id))
    except ConveyorError as exc:
        async with db.read() as conn:
            badges = await console.badges(conn, viewer.client)
        return render(
            request,
            "home.html",
            viewer=viewer,
            badges=badges,
            status_code=exc.status_code if exc.status_code < 500 else 400,
            photo_error=exc.message,
            **home_context(request, console, None),
        )
    return _see(f"/console/jobs/{job_id}")


@router.post("/console/jobs/{job_id}/cancel")
async def cancel_job(
    viewer: ConsoleViewer, form: ConsoleForm, conn: WriteConn, jobs: JobServiceDep, job_id: JobId
) -> Response:
    await jobs.cancel(conn, viewer.client, job_id)
    return _see(f"/console/jobs/{job_id}")


@router.post("/console/jobs/{job_id}/retry")
async def retry_job(
    viewer: ConsoleViewer, form: ConsoleForm, conn: WriteConn, jobs: JobServiceDep, job_id: JobId
) -> Response:
    await jobs.retry(conn, viewer.client, job_id, cancelled_too=True)
    return _see(f"/console/jobs/{job_id}")


@router.post("/console/workers/dead/{task_id}/requeue")
async def requeue_task(
    viewer: ConsoleAdmin,
    form: ConsoleForm,
    conn: WriteConn,
    operator: OperatorServiceDep,
    task_id: Annotated[int, Path(ge=1, le=2**62)],
) -> Response:
    if not await operator.requeue(conn, task_id):
        raise NotFound(f"task {task_id} is not a dead task")
    return _see("/console/workers")


@router.post("/console/keys")
async def create_key(
    request: Request,
    viewer: ConsoleAdmin,
    form: ConsoleForm,
    clients: ClientServiceDep,
    console: ConsoleServiceDep,
    db: DatabaseDep,
) -> Response:
    client_name = str(form.get("client") or "").strip()
    key_name = str(form.get("name") or "").strip() or "default"
    if not client_name or len(client_name) > 100 or len(key_name) > 100:
        raise ValidationFailed("a client name (1-100 characters) is required")
    key, info = await clients.create_key(client_name, key_name=key_name)
    async with db.read() as conn:
        badges = await console.badges(conn, viewer.client)
    # Shown once, in this answer; only its hash is stored.
    return render(
        request,
        "keys.html",
        viewer=viewer,
        badges=badges,
        keys=await clients.list_keys(),
        created={"key": key, "info": info},
    )


@router.post("/console/keys/{key_id}/revoke")
async def revoke_key(
    viewer: ConsoleAdmin,
    form: ConsoleForm,
    clients: ClientServiceDep,
    key_id: Annotated[str, Path(min_length=4, max_length=64)],
) -> Response:
    await clients.revoke_key(key_id)
    return _see("/console/keys")


@router.post("/console/sign-in")
async def sign_in(
    request: Request,
    form: ConsoleForm,
    sessions: SessionCodecDep,
    clients: ClientServiceDep,
) -> Response:
    key = str(form.get("key") or "").strip()
    target = safe_next(str(form.get("next") or "/"))
    found = await clients.sign_in(key) if 0 < len(key) <= 200 else None
    if found is None:
        fresh = sessions.open_session()
        request.state.console_cookie = (sessions.encode(fresh), sessions.seconds_left(fresh))
        return render(
            request,
            "sign_in.html",
            viewer=None,
            status_code=401,
            csrf_token=sessions.csrf_token(fresh),
            next=target,
            open_mode=await clients.is_open(),
            error="That key is not valid (or was revoked).",
        )
    _client, key_id = found
    # A new session id on sign-in: a session planted before cannot ride along.
    session = sessions.signed_in(key_id)
    request.state.console_cookie = (sessions.encode(session), sessions.seconds_left(session))
    return _see(target)


@router.post("/console/sign-out")
async def sign_out(request: Request, form: ConsoleForm, sessions: SessionCodecDep) -> Response:
    fresh = sessions.open_session()
    request.state.console_cookie = (sessions.encode(fresh), sessions.seconds_left(fresh))
    return _see("/console/sign-in")
