"""What can be called here: models with their availability, providers with their health,
recipes; and providers added as data at run time.

Shipped specs (``providers/specs/*.yaml``) are what the node starts with. Operators add
specs (YAML or JSON, or seed 003's ``AIModel`` row) over HTTP or with the CLI; they are
stored in the database and installed on the node that took them at once, on every other
node at its next ``refresh`` (every 30 s). A stored spec whose name is shipped replaces the
shipped one (only when asked to, explicitly); removing it brings the shipped one back.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import yaml
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.catalog import repository
from conveyor.catalog.aimodel import SOURCE as AIMODEL_SOURCE
from conveyor.catalog.aimodel import is_ai_model, parse_ai_model, spec_model
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.core.periodic import every
from conveyor.errors import Conflict, NotFound, ValidationFailed
from conveyor.providers.base import ModelAdapter
from conveyor.providers.http.adapter import HttpModelAdapter
from conveyor.providers.http.dry_run import DryRun, dry_run
from conveyor.providers.registry import ModelRegistry
from conveyor.providers.spec import ProviderSpec, ProviderSpecError, parse_spec_text
from conveyor.recipes.base import RecipeRegistry, asset_file

log = logging.getLogger(__name__)

AdapterFactory = Callable[[Sequence[ProviderSpec]], list[ModelAdapter]]
# Local engines answer to this provider name; a spec may not take it over.
RESERVED_NAMES: Final = frozenset({"local"})
MAX_SPEC_CHARS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class ProviderChange:
    """What storing a spec did."""

    spec: ProviderSpec
    created: bool
    replaces_shipped: bool
    # The model an AIModel row became.
    model_id: str | None = None


@dataclass(frozen=True, slots=True)
class RemovedProvider:
    name: str
    restored_shipped: bool


@dataclass(frozen=True, slots=True)
class ProviderTestPlan:
    """The one call ``POST /v1/providers/{name}/test`` makes."""

    model_id: str
    inputs: dict[str, Any]
    simulated: bool


async def store_spec(
    conn: AsyncConnection,
    spec: ProviderSpec,
    source: str,
    *,
    shipped: Mapping[str, ProviderSpec],
    replace: bool,
    now: datetime,
) -> bool:
    """Store ``source`` (already validated as ``spec``); True if it is new. Refuses, unless
    ``replace``, a name that is stored already or shipped."""
    stored = await repository.get_spec(conn, spec.name, lock=True)
    return await _write_spec(
        conn, spec, source, stored=stored, shipped=shipped, replace=replace, now=now
    )


async def _write_spec(
    conn: AsyncConnection,
    spec: ProviderSpec,
    source: str,
    *,
    stored: str | None,
    shipped: Mapping[str, ProviderSpec],
    replace: bool,
    now: datetime,
) -> bool:
    """``store_spec`` once the row was read (and locked) in this transaction."""
    if spec.name in RESERVED_NAMES:
        raise ValidationFailed(
            f"name: {spec.name!r} is reserved for local engines; choose another provider name",
            code="INVALID_PROVIDER_SPEC",
        )
    if not replace and (stored is not None or spec.name in shipped):
        what = "a stored provider" if stored is not None else "a provider shipped with Conveyor"
        raise Conflict(
            f"{spec.name!r} is already {what}; replace it explicitly (PUT "
            f"/v1/providers/{spec.name}, ?replace=true, or 'conveyor providers add --replace')",
            code="PROVIDER_EXISTS",
        )
    if stored is not None and await repository.update_spec(conn, spec.name, source, now):
        return False
    if stored is None and await repository.insert_spec(conn, spec.name, source, now):
        return True
    raise Conflict(
        f"provider {spec.name!r} was changed by another request at the same time; try again",
        code="PROVIDER_CHANGED",
    )


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
        # What the node started with, kept to put back when a stored spec is removed.
        self._shipped: dict[str, ProviderSpec] = {}
        self._shipped_adapters: dict[str, list[ModelAdapter]] = {}
        for adapter in models.all():
            spec = getattr(adapter, "spec", None)
            if isinstance(spec, ProviderSpec):
                self._shipped[spec.name] = spec
                self._shipped_adapters.setdefault(spec.name, []).append(adapter)
        self._stored: dict[str, ProviderSpec] = {}
        self._fingerprint: object = None

    @property
    def shipped(self) -> Mapping[str, ProviderSpec]:
        return self._shipped

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
        return self._adapter(model_id).catalogue_entry()

    def providers(self) -> list[dict[str, Any]]:
        grouped: dict[str, list[ModelAdapter]] = {}
        for adapter in self.registry.all():
            grouped.setdefault(str(getattr(adapter, "provider", "local")), []).append(adapter)
        return [self._provider_entry(name, adapters) for name, adapters in sorted(grouped.items())]

    def provider(self, name: str) -> dict[str, Any]:
        adapters = [a for a in self.registry.all() if getattr(a, "provider", "local") == name]
        if not adapters:
            raise NotFound(f"provider {name} not found", code="PROVIDER_NOT_FOUND")
        return self._provider_entry(name, adapters)

    def _provider_entry(self, name: str, adapters: list[ModelAdapter]) -> dict[str, Any]:
        first = adapters[0]
        spec = getattr(first, "spec", None)
        limits = getattr(first, "limits", None)
        health = dataclasses.asdict(limits.health()) if limits is not None else None
        available = [a.model_id for a in adapters if a.availability().available]
        return {
            "name": name,
            "title": getattr(spec, "title", None) or "Local engines",
            "type": "http" if isinstance(spec, ProviderSpec) else "local",
            "docs": getattr(spec, "docs", None),
            "base_url": getattr(first, "base_url", None),
            "simulated": bool(getattr(first, "simulated", False)),
            "models": [a.model_id for a in adapters],
            "available_models": available,
            "available": bool(available),
            "stored": name in self._stored,
            "replaces_shipped": name in self._stored and name in self._shipped,
            "health": health,
        }

    async def provider_source(self, name: str) -> tuple[str, str]:
        """Where ``name``'s spec comes from (``stored`` or ``shipped``) and its text."""
        async with self.db.read() as conn:
            source = await repository.get_spec(conn, name)
        if source is not None:
            return "stored", source
        if name in self._shipped:
            return "shipped", _as_yaml(_spec_data(self._shipped[name]))
        if any(getattr(a, "provider", "local") == name for a in self.registry.all()):
            raise NotFound(
                f"provider {name} has no spec: its models are code (local engines)",
                code="PROVIDER_HAS_NO_SPEC",
            )
        raise NotFound(f"provider {name} not found", code="PROVIDER_NOT_FOUND")

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

    def _adapter(self, model_id: str) -> ModelAdapter:
        adapter = self.registry.get(model_id)
        if adapter is None:
            raise NotFound(f"model {model_id} not found", code="MODEL_NOT_FOUND")
        return adapter

    # -- dry runs and tests ------------------------------------------------------------

    def render(self, model_id: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The request ``model_id`` would send for ``inputs``, key masked; nothing is sent."""
        adapter = self._http_adapter(model_id)
        notes: list[str] = []
        given: dict[str, Any] = {}
        for name, value in inputs.items():
            file = asset_file(value)
            if file is not None and file.asset_id:
                # A real call sends a link the provider can fetch (or a data: URL).
                given[name] = f"<URL of asset {file.asset_id}>"
                notes.append(f"{name}: asset {file.asset_id} is sent as a URL to fetch it")
            elif file is not None and file.url:
                given[name] = file.url
            else:
                given[name] = value
        request: DryRun = dry_run(adapter, given)
        found = adapter.availability()
        if not found.available:
            notes.append(f"a real call would be refused now: {found.reason}")
        if request.simulated:
            notes.append("simulate mode: this request would go to the provider simulator")
        return {
            "model": model_id,
            "method": request.method,
            "url": request.url,
            "headers": request.headers,
            "query": request.query,
            "body": request.body,
            "simulated": request.simulated,
            "notes": notes,
        }

    def test_plan(
        self, name: str, model_id: str | None, inputs: Mapping[str, Any] | None
    ) -> ProviderTestPlan:
        """Which model a provider test calls, and with what (a prompt when none is given)."""
        entry = self.provider(name)
        spec = self._stored.get(name) or self._shipped.get(name)
        # The spec's own first model (its headline one), else the first by id.
        chosen = model_id or (spec.models[0].id if spec else entry["models"][0])
        if chosen not in entry["models"]:
            raise ValidationFailed(
                f"model: {chosen} is not a model of provider {name} "
                f"(it has: {', '.join(entry['models'])})",
                code="UNKNOWN_MODEL",
            )
        given = dict(inputs or {})
        if not given:
            given = {"prompt": "a red cube on a white background"}
        adapter = self._adapter(chosen)
        return ProviderTestPlan(chosen, given, bool(getattr(adapter, "simulated", False)))

    def _http_adapter(self, model_id: str) -> HttpModelAdapter:
        adapter = self._adapter(model_id)
        if not isinstance(adapter, HttpModelAdapter):
            raise ValidationFailed(
                f"{model_id} runs on this machine: it sends no HTTP request to show",
                code="NOT_AN_HTTP_MODEL",
            )
        return adapter

    # -- providers added as data -------------------------------------------------------

    async def add_document(
        self, data: Any, text: str | None, *, replace: bool, name: str | None = None
    ) -> ProviderChange:
        """Store a decoded spec or AIModel row (``text``: the YAML as given, if it was)."""
        if is_ai_model(data):
            return await self.add_ai_model(data, replace=replace, name=name)
        source = text if text is not None else _as_yaml(data)
        return await self.add_provider(source, replace=replace, name=name)

    async def add_provider(
        self,
        source: str,
        *,
        origin: str = "<upload>",
        replace: bool = False,
        name: str | None = None,
    ) -> ProviderChange:
        """Validate a spec, store it, and make its models callable on this node at once.
        ``name`` (from a URL) must match the spec's."""
        if len(source) > MAX_SPEC_CHARS:
            raise ProviderSpecError(origin, [f"spec: longer than {MAX_SPEC_CHARS} characters"])
        spec = parse_spec_text(source, source=origin)
        if name is not None and spec.name != name:
            raise ProviderSpecError(
                origin, [f"name: the spec is named {spec.name!r}, the URL says {name!r}"]
            )
        async with self.db.write() as conn:
            created = await store_spec(
                conn, spec, source, shipped=self._shipped, replace=replace, now=self.clock.now()
            )
        self._install(spec)
        return ProviderChange(spec, created, spec.name in self._shipped)

    async def add_ai_model(
        self, data: Mapping[str, Any], *, replace: bool = False, name: str | None = None
    ) -> ProviderChange:
        """Add seed 003's AIModel row as a model of the provider it names. The provider's
        stored spec (or a stored copy of the shipped one) gains the model."""
        row = parse_ai_model(data)
        if name is not None and row.provider != name:
            raise ProviderSpecError(
                AIMODEL_SOURCE, [f"provider: the row names {row.provider!r}, the URL {name!r}"]
            )
        async with self.db.write() as conn:
            stored = await repository.get_spec(conn, row.provider, lock=True)
            if stored is not None:
                document = parse_spec_text(stored, source=f"stored provider {row.provider}")
                base = _loaded(stored)
            elif row.provider in self._shipped:
                document = self._shipped[row.provider]
                base = _spec_data(document)
            else:
                known = ", ".join(sorted({*self._shipped, *self._stored})) or "none"
                raise ProviderSpecError(
                    AIMODEL_SOURCE,
                    [
                        f"provider: no provider {row.provider!r} here (known: {known}); an "
                        "AIModel takes its base URL, auth, polling and statuses from an existing "
                        "provider, so add that provider as a full spec first"
                    ],
                )
            converted = spec_model(row, document)
            models = [m for m in base.get("models", []) if isinstance(m, Mapping)]
            exists = any(m.get("id") == converted.model_id for m in models)
            if exists and not replace:
                raise Conflict(
                    f"model {converted.model_id} already exists; replace it explicitly "
                    "(PUT, or ?replace=true)",
                    code="MODEL_EXISTS",
                )
            base["models"] = [m for m in models if m.get("id") != converted.model_id] + [
                converted.model
            ]
            source = _as_yaml(base)
            spec = parse_spec_text(source, source=AIMODEL_SOURCE)
            # Adding a model to a shipped provider is what the row asks for: no extra flag.
            created = await _write_spec(
                conn,
                spec,
                source,
                stored=stored,
                shipped=self._shipped,
                replace=True,
                now=self.clock.now(),
            )
        self._install(spec)
        return ProviderChange(spec, created, spec.name in self._shipped, converted.model_id)

    async def remove_provider(self, name: str) -> RemovedProvider:
        """Delete a stored spec; a shipped spec it replaced comes back."""
        async with self.db.write() as conn:
            removed = await repository.delete_spec(conn, name)
        if not removed:
            if name in self._shipped:
                raise Conflict(
                    f"{name!r} is shipped with Conveyor and cannot be removed; store a "
                    "replacement with PUT to change it",
                    code="PROVIDER_SHIPPED",
                )
            raise NotFound(f"no stored provider {name!r}", code="PROVIDER_NOT_FOUND")
        self._uninstall(name)
        return RemovedProvider(name, restored_shipped=name in self._shipped)

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
            self._install(spec)

    async def refresh(self) -> bool:
        """Re-read stored specs if another node changed them; True if anything changed."""
        async with self.db.read() as conn:
            current = await repository.fingerprint(conn)
        if current == self._fingerprint:
            return False
        specs = await self.stored_specs()
        names = {s.name for s in specs}
        for name in set(self._stored) - names:
            self._uninstall(name)
        for spec in specs:
            if spec != self._stored.get(spec.name):
                self._install(spec)
        return True

    async def follow_changes(self, interval: float = 30.0) -> None:
        async def check() -> None:
            if await self.refresh():
                log.info("provider specs changed; models reloaded")

        await every(interval, check, name="provider spec refresh")

    def _install(self, spec: ProviderSpec) -> None:
        """``spec``'s models become the provider's models on this node."""
        if spec.name in RESERVED_NAMES:
            log.error("skipping stored provider %s: the name is reserved", spec.name)
            return
        adapters = self._build_adapters([spec])
        self._drop_models(spec.name)
        for adapter in adapters:
            self.registry.add(adapter)
        self._stored[spec.name] = spec

    def _uninstall(self, name: str) -> None:
        self._drop_models(name)
        self._stored.pop(name, None)
        for adapter in self._shipped_adapters.get(name, []):
            self.registry.add(adapter)

    def _drop_models(self, provider: str) -> None:
        for adapter in self.registry.all():
            if getattr(adapter, "provider", None) == provider:
                self.registry.remove(adapter.model_id)


def _spec_data(spec: ProviderSpec) -> dict[str, Any]:
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_none=True)
    return data


def _loaded(source: str) -> dict[str, Any]:
    data = yaml.safe_load(source)
    assert isinstance(data, dict)  # it parsed as a spec a moment ago
    return data


def _as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
