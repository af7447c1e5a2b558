"""Two nodes on one database: what one stores, the other installs at its next refresh; a
removed spec that replaced a shipped one gives the shipped one back on both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest

from conveyor.catalog import repository
from conveyor.catalog.service import CatalogService, ProviderChange
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from conveyor.errors import Conflict
from conveyor.providers.base import ModelAdapter
from conveyor.providers.http import HttpOverrides, build_http_adapters, read_specs
from conveyor.providers.registry import ModelRegistry
from conveyor.providers.spec import ProviderSpec
from conveyor.recipes.base import RecipeRegistry
from tests.integration.catalog.test_providers_as_data import SEED_ROW, TINY_KIE


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def node(db: Database, session: aiohttp.ClientSession) -> CatalogService:
    def build(specs: Sequence[ProviderSpec]) -> list[ModelAdapter]:
        return list(build_http_adapters(specs, session, HttpOverrides()))

    registry = ModelRegistry(build(read_specs()))
    return CatalogService(db, SystemClock(), registry, RecipeRegistry([]), build_adapters=build)


async def test_another_node_follows_adds_replacements_and_removals(
    db: Database, session: aiohttp.ClientSession
) -> None:
    first, second = node(db, session), node(db, session)
    await first.load_stored()
    await second.load_stored()
    assert await second.refresh() is False

    await first.add_provider(TINY_KIE, replace=True)
    assert "kie/tiny" in first.registry
    assert "kie/tiny" not in second.registry
    assert await second.refresh() is True
    assert "kie/tiny" in second.registry
    assert "kie/seedream-4.5" not in second.registry
    assert second.provider("kie")["replaces_shipped"] is True

    change = await second.add_ai_model(SEED_ROW)
    assert change.model_id == "kie/seedance-1.5-pro-fast"
    assert await first.refresh() is True
    assert {"kie/tiny", "kie/seedance-1.5-pro-fast"} <= {
        model_id for model_id in first.provider("kie")["models"]
    }

    removed = await first.remove_provider("kie")
    assert removed.restored_shipped is True
    assert await second.refresh() is True
    for catalog in (first, second):
        assert "kie/seedream-4.5" in catalog.registry
        assert "kie/tiny" not in catalog.registry
        assert "kie/seedance-1.5-pro-fast" not in catalog.registry
        assert catalog.provider("kie")["stored"] is False


async def test_two_requests_adding_one_name_at_once_store_it_once(
    db: Database, session: aiohttp.ClientSession
) -> None:
    first, second = node(db, session), node(db, session)
    spec = TINY_KIE.replace("name: kie", "name: acme").replace("kie/tiny", "acme/tiny")
    results = await asyncio.gather(
        first.add_provider(spec), second.add_provider(spec), return_exceptions=True
    )
    stored = [r for r in results if isinstance(r, ProviderChange)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(stored) == 1
    assert stored[0].created is True
    assert len(refused) == 1
    assert refused[0].code in ("PROVIDER_EXISTS", "PROVIDER_CHANGED")
    async with db.read() as conn:
        assert [name for name, _ in await repository.all_specs(conn)] == ["acme"]
