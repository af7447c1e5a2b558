"""``/v1/models``, ``/v1/providers``, ``/v1/recipes``: what can be called here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from conveyor.deps import CatalogServiceDep, CurrentClient

router = APIRouter(prefix="/v1", tags=["catalogue"])


class ModelEntry(BaseModel):
    id: str
    kind: str
    provider: str
    title: str
    description: str
    pros: list[str]
    cons: list[str]
    tags: list[str]
    license: str | None = None
    price: Any = None
    spec: dict[str, Any]
    simulated: bool = False
    available: bool
    unavailable_reason: str | None = None
    enable_with: str | None = None


class ProviderEntry(BaseModel):
    name: str
    title: str
    type: str
    docs: str | None
    base_url: str | None
    simulated: bool
    models: list[str]
    available_models: list[str]
    available: bool
    stored: bool
    health: dict[str, Any] | None


class RecipeEntry(BaseModel):
    name: str
    title: str
    description: str
    stages: list[str]
    item_schema: dict[str, Any]
    options_schema: dict[str, Any]


@router.get("/models", response_model=list[ModelEntry], summary="The model catalogue")
async def list_models(
    catalog: CatalogServiceDep,
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
async def get_model(
    catalog: CatalogServiceDep,
    _client: CurrentClient,
    model_id: Annotated[str, Path(max_length=128)],
) -> dict[str, Any]:
    return catalog.model(model_id)


@router.get("/providers", response_model=list[ProviderEntry], summary="Providers and health")
async def list_providers(
    catalog: CatalogServiceDep, _client: CurrentClient
) -> list[dict[str, Any]]:
    return catalog.providers()


@router.get("/recipes", response_model=list[RecipeEntry], summary="Recipes")
async def list_recipes(catalog: CatalogServiceDep, _client: CurrentClient) -> list[dict[str, Any]]:
    return catalog.recipes()
