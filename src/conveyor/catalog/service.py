"""What can be called here: models with their availability, providers with their health,
recipes. Operators add providers as data (YAML) at run time; every node picks them up."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from conveyor.catalog import repository
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.core.periodic import every
from conveyor.errors import NotFound
from conveyor.providers.base import ModelAdapter
from conveyor.providers.registry import ModelRegistry
from conveyor.providers.spec import ProviderSpec, ProviderSpecError, parse_spec_text
from conveyor.recipes.base import RecipeRegistry

log = logging.getLogger(__name__)

AdapterFactory = Callable[[Sequence[ProviderSpec]], list[ModelAdapter]]


class CatalogService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        models: ModelRegistry,
        recipes: RecipeRegistry,
        build_adapters: AdapterFactory,
    ) -> None:
        self.db = db
        self.clock = clock
        self.registry = models
        self.recipe_registry = recipes
        self._build_adapters = build_adapters
        self._stored_models: dict[str, set[str]] = {}
        self._fingerprint: object = None

    # -- reading -----------------------------------------------------------------------

    def models(
        self, *, kind: str | None = None, available: bool | None = None
    ) -> list[dict[str, Any]]:
        entries = [adapter.catalogue_entry() for adapter in self.registry.all()]
        if kind is not None:
            entries = [e for e in entries if e["kind"] == kind]
        if available is not None:
            entries = [e for e in entries if e["available"] is available]
        return entries

    def model(self, model_id: str) -> dict[str, Any]:
        adapter = self.registry.get(model_id)
        if adapter is None:
            raise NotFound(f"model {model_id} not found", code="MODEL_NOT_FOUND")
        return adapter.catalogue_entry()

    def providers(self) -> list[dict[str, Any]]:
        grouped: dict[str, list[ModelAdapter]] = {}
        for adapter in self.registry.all():
            grouped.setdefault(str(getattr(adapter, "provider", "local")), []).append(adapter)
        result = []
        for name, adapters in sorted(grouped.items()):
            first = adapters[0]
            spec = getattr(first, "spec", None)
            limits = getattr(first, "limits", None)
            health = dataclasses.asdict(limits.health()) if limits is not None else None
            available = [a.model_id for a in adapters if a.availability().available]
            result.append(
                {
                    "name": name,
                    "title": getattr(spec, "title", None) or "Local engines",
                    "type": "http" if isinstance(spec, ProviderSpec) else "local",
                    "docs": getattr(spec, "docs", None),
                    "base_url": getattr(first, "base_url", None),
                    "simulated": bool(getattr(first, "simulated", False)),
                    "models": [a.model_id for a in adapters],
                    "available_models": available,
                    "available": bool(available),
                    "stored": name in self._stored_models,
                    "health": health,
                }
            )
        return result

    def recipes(self) -> list[dict[str, Any]]:
        return [
            {
                "name": recipe.name,
                "title": recipe.title,
                "description": recipe.description,
                "stages": list(recipe.stages),
                "item_schema": recipe.item_model.model_json_schema(),
                "options_schema": recipe.options_model.model_json_schema(),
            }
            for recipe in self.recipe_registry.all()
        ]

    # -- operator-added providers ------------------------------------------------------

    async def add_provider(self, source: str, *, origin: str = "<upload>") -> ProviderSpec:
        """Validate a YAML spec, store it, and make its models callable on this node."""
        spec = parse_spec_text(source, source=origin)
        async with self.db.write() as conn:
            await repository.save_spec(conn, spec.name, source, self.clock.now())
        self._register(spec)
        return spec

    async def remove_provider(self, name: str) -> bool:
        async with self.db.write() as conn:
            removed = await repository.delete_spec(conn, name)
        for model_id in self._stored_models.pop(name, set()):
            self.registry.remove(model_id)
        return removed

    async def stored_specs(self) -> list[ProviderSpec]:
        """The valid stored specs (an invalid row is logged and skipped, never fatal)."""
        async with self.db.read() as conn:
            rows = await repository.all_specs(conn)
            self._fingerprint = await repository.fingerprint(conn)
        specs = []
        for name, source in rows:
            try:
                specs.append(parse_spec_text(source, source=f"stored provider {name}"))
            except ProviderSpecError as exc:
                log.error("skipping stored provider %s: %s", name, exc.message)
        return specs

    async def load_stored(self) -> None:
        """Make the stored providers' models callable (at start-up)."""
        for spec in await self.stored_specs():
            self._register(spec)

    def _register(self, spec: ProviderSpec) -> None:
        adapters = self._build_adapters([spec])
        new_ids = {a.model_id for a in adapters}
        for gone in self._stored_models.get(spec.name, set()) - new_ids:
            self.registry.remove(gone)
        for adapter in adapters:
            self.registry.add(adapter)
        self._stored_models[spec.name] = new_ids

    async def refresh(self) -> bool:
        """Re-read stored specs if another node changed them; True if anything changed."""
        async with self.db.read() as conn:
            current = await repository.fingerprint(conn)
        if current == self._fingerprint:
            return False
        specs = await self.stored_specs()
        names = {s.name for s in specs}
        for name in set(self._stored_models) - names:
            for model_id in self._stored_models.pop(name):
                self.registry.remove(model_id)
        for spec in specs:
            self._register(spec)
        return True

    async def follow_changes(self, interval: float = 30.0) -> None:
        async def check() -> None:
            if await self.refresh():
                log.info("provider specs changed; models reloaded")

        await every(interval, check, name="provider spec refresh")
