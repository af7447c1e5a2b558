"""``/v1/models``, ``/v1/providers``, ``/v1/recipes``: what can be called here, dry runs,
and (admin keys only) providers added, replaced and removed as data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from conveyor.catalog.schemas import (
    ModelEntry,
    ProviderEntry,
    ProviderRemoved,
    ProviderSaved,
    ProviderSpecOut,
    ProviderTest,
    ProviderTestResult,
    RecipeEntry,
    RenderedRequest,
    RenderRequest,
    decode_spec_body,
)
from conveyor.catalog.service import CatalogService, ProviderChange
from conveyor.deps import (
    AdminClient,
    CatalogServiceDep,
    CurrentClient,
    DatabaseDep,
    JobServiceDep,
    JobStreamsDep,
    SettingsDep,
)
from conveyor.jobs.schemas import JobCreate

router = APIRouter(prefix="/v1", tags=["catalogue"])


Catalog = CatalogServiceDep
ModelId = Annotated[str, Path(max_length=128)]
ProviderName = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Replace = Annotated[bool, Query(description="Replace a stored or shipped spec of that name")]

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    403: {"description": "Not an admin key"},
}
_SPEC_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A provider spec (docs/providers.md) or seed 003's AIModel row "
        "{provider, name, model_type, api_endpoint, request_schema, is_active}",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}
_SPEC_ERRORS: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    409: {"description": "The name is stored or shipped already; replace explicitly"},
    415: {"description": "Not YAML or JSON"},
    422: {"description": "An invalid spec: every fault with its location in details.errors"},
}


@router.get("/models", response_model=list[ModelEntry], summary="The model catalogue")
async def list_models(
    catalog: Catalog,
    _client: CurrentClient,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    available: Annotated[bool | None, Query()] = None,
) -> list[dict[str, Any]]:
    return catalog.models(kind=kind, available=available)


@router.get(
    "/models/{model_id:path}",
    response_model=ModelEntry,
    summary="One model",
    responses={404: {"description": "Unknown model"}},
)
async def get_model(catalog: Catalog, _client: CurrentClient, model_id: ModelId) -> dict[str, Any]:
    return catalog.model(model_id)


@router.post(
    "/models/{model_id:path}/render",
    response_model=RenderedRequest,
    summary="Dry run: the HTTP request a call would send (keys masked), not sent",
    responses={404: {"description": "Unknown model"}, 422: {"description": "Invalid inputs"}},
)
async def render_model(
    catalog: Catalog, _client: CurrentClient, model_id: ModelId, body: RenderRequest
) -> dict[str, Any]:
    return catalog.render(model_id, body.inputs)


@router.get("/providers", response_model=list[ProviderEntry], summary="Providers and health")
async def list_providers(catalog: Catalog, _client: CurrentClient) -> list[dict[str, Any]]:
    return catalog.providers()


@router.get(
    "/providers/{name}",
    response_model=ProviderSpecOut,
    summary="One provider with its spec",
    responses={**_AUTH, 404: {"description": "Unknown provider"}},
)
async def get_provider(catalog: Catalog, _admin: AdminClient, name: ProviderName) -> dict[str, Any]:
    # Admins only: an operator's spec may carry a literal header value.
    entry = catalog.provider(name)
    origin, source = await catalog.provider_source(name)
    return {**entry, "origin": origin, "source": source}


@router.post(
    "/providers",
    response_model=ProviderSaved,
    status_code=201,
    summary="Add a provider spec (YAML or JSON) or an AIModel row",
    responses={200: {"description": "Replaced (with replace=true)"}, **_SPEC_ERRORS},
    openapi_extra=_SPEC_BODY,
)
async def add_provider(
    request: Request,
    response: Response,
    catalog: Catalog,
    _admin: AdminClient,
    replace: Replace = False,
) -> dict[str, Any]:
    document = decode_spec_body(request.headers.get("content-type", ""), await request.body())
    change = await catalog.add_document(document.data, document.text, replace=replace)
    return _saved(catalog, change, response)


@router.put(
    "/providers/{name}",
    response_model=ProviderSaved,
    summary="Store a provider spec under this name, replacing what was there",
    responses={201: {"description": "Created"}, **_SPEC_ERRORS},
    openapi_extra=_SPEC_BODY,
)
async def put_provider(
    request: Request, response: Response, catalog: Catalog, _admin: AdminClient, name: ProviderName
) -> dict[str, Any]:
    document = decode_spec_body(request.headers.get("content-type", ""), await request.body())
    change = await catalog.add_document(document.data, document.text, replace=True, name=name)
    return _saved(catalog, change, response)


@router.delete(
    "/providers/{name}",
    response_model=ProviderRemoved,
    summary="Remove a stored provider spec (a shipped one it replaced comes back)",
    responses={
        **_AUTH,
        404: {"description": "No stored provider of that name"},
        409: {"description": "A shipped provider cannot be removed"},
    },
)
async def remove_provider(
    catalog: Catalog, _admin: AdminClient, name: ProviderName
) -> ProviderRemoved:
    removed = await catalog.remove_provider(name)
    return ProviderRemoved(name=removed.name, restored_shipped=removed.restored_shipped)


@router.post(
    "/providers/{name}/test",
    response_model=ProviderTestResult,
    summary="One real call through a provider: submit, poll, store the result",
    responses={
        202: {"description": "Still running after `wait`"},
        404: {"description": "Unknown provider"},
    },
)
async def test_provider(
    response: Response,
    catalog: Catalog,
    client: CurrentClient,
    db: DatabaseDep,
    jobs: JobServiceDep,
    streams: JobStreamsDep,
    settings: SettingsDep,
    name: ProviderName,
    body: ProviderTest,
) -> ProviderTestResult:
    plan = catalog.test_plan(name, body.model, body.inputs)
    submission = jobs.prepare(JobCreate(model=plan.model_id, items=[plan.inputs], wait=body.wait))
    async with db.write() as conn:
        created = await jobs.create(conn, client, submission)
    job = await streams.wait(created.job.id, min(body.wait, settings.max_wait_seconds))
    async with db.read() as conn:
        items, _ = await jobs.items(conn, job)
    item = items[0]
    where = "the provider simulator" if plan.simulated else f"provider {name}"
    if item.status == "completed":
        message = f"{plan.model_id} works (answered by {where})"
    elif job.finished:
        message = f"{plan.model_id} failed (answered by {where}): {item.error}"
    else:
        response.status_code = 202
        message = f"{plan.model_id} is still running after {body.wait:g} s; follow job {job.id}"
    return ProviderTestResult(
        provider=name,
        model=plan.model_id,
        job_id=job.id,
        status=item.status,
        simulated=plan.simulated,
        message=message,
        output=item.output,
        error=item.error,
    )


@router.get("/recipes", response_model=list[RecipeEntry], summary="Recipes")
async def list_recipes(catalog: Catalog, _client: CurrentClient) -> list[dict[str, Any]]:
    return catalog.recipes()


def _saved(catalog: CatalogService, change: ProviderChange, response: Response) -> dict[str, Any]:
    response.status_code = 201 if change.created else 200
    entry = catalog.provider(change.spec.name)
    return {**entry, "created": change.created, "model": change.model_id}
