"""What a job would cost and which models it would call: ``POST /v1/jobs`` with ``dry_run``.

Nothing is written and nothing is called. Each item lists the chain of models its step
would try, in order, each with its price if the catalogue knows it (a provider's per-call
price, a per-unit price times the item's units, 0 for a local engine) and else null; the
item's price is that of the first available model of its chain, as that is the one that
would run. The total is their sum when every item's price is known and in one currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from conveyor.providers.registry import ModelRegistry


class ModelPrice(BaseModel):
    model: str
    available: bool
    price: float | None = Field(description="Per call for this item; null: not known before")
    currency: str | None


class ItemEstimate(BaseModel):
    index: int
    chain: list[ModelPrice] = Field(description="The models the item would try, in order")
    price: float | None
    currency: str | None


class EstimateTotal(BaseModel):
    price: float | None = Field(description="Null when an item's price is not known")
    currency: str | None


class JobEstimate(BaseModel):
    dry_run: Literal[True] = True
    recipe: str
    model: str | None
    count: int = Field(description="Items the job would have")
    models: list[str] = Field(description="Every model the job may call")
    items: list[ItemEstimate]
    total: EstimateTotal


def estimate(
    models: ModelRegistry,
    *,
    recipe: str,
    model: str | None,
    chain: Sequence[str],
    item_inputs: Sequence[Mapping[str, Any]] | None,
    count: int,
) -> JobEstimate:
    """The estimate of a job whose items each try ``chain``; ``item_inputs`` are the
    model's inputs per item (a ``model`` job), or None when a recipe decides what it calls
    (its items' prices are then unknown)."""
    entries = {m: _entry(models, m) for m in chain}
    items: list[ItemEstimate] = []
    for index in range(count):
        inputs = item_inputs[index] if item_inputs is not None else None
        priced = [_model_price(m, entries[m], inputs) for m in chain]
        first = next((p for p in priced if p.available), None)
        known = first is not None and inputs is not None
        items.append(
            ItemEstimate(
                index=index,
                chain=priced,
                price=first.price if known and first is not None else None,
                currency=first.currency if known and first is not None else None,
            )
        )
    return JobEstimate(
        recipe=recipe,
        model=model,
        count=count,
        models=list(chain),
        items=items,
        total=_total(items),
    )


def _entry(models: ModelRegistry, model_id: str) -> dict[str, Any]:
    adapter = models.get(model_id)
    return adapter.catalogue_entry() if adapter is not None else {}


def _model_price(
    model_id: str, entry: Mapping[str, Any], inputs: Mapping[str, Any] | None
) -> ModelPrice:
    available = bool(entry.get("available", False))
    price = entry.get("price")
    if isinstance(price, int | float) and not isinstance(price, bool):
        # A bare number is the catalogue's "free" (local engines): no currency to speak of.
        return ModelPrice(model=model_id, available=available, price=float(price), currency=None)
    if not isinstance(price, Mapping) or inputs is None:
        return ModelPrice(model=model_id, available=available, price=None, currency=None)
    currency = price.get("currency")
    currency = str(currency) if currency else None
    if price.get("per_call") is not None:
        return ModelPrice(
            model=model_id, available=available, price=float(price["per_call"]), currency=currency
        )
    unit = price.get("unit")
    if price.get("per_unit") is not None and isinstance(unit, str):
        defaults = (entry.get("spec") or {}).get("defaults") or {}
        units = inputs.get(unit, defaults.get(unit))
        if isinstance(units, int | float) and not isinstance(units, bool):
            return ModelPrice(
                model=model_id,
                available=available,
                price=round(float(price["per_unit"]) * units, 6),
                currency=currency,
            )
    # Priced by something known only from the answer (seconds of video made, tokens).
    return ModelPrice(model=model_id, available=available, price=None, currency=currency)


def _total(items: Sequence[ItemEstimate]) -> EstimateTotal:
    if any(item.price is None for item in items):
        return EstimateTotal(price=None, currency=None)
    currencies = {item.currency for item in items if item.price and item.currency}
    if len(currencies) > 1:
        return EstimateTotal(price=None, currency=None)
    total = round(sum(item.price or 0.0 for item in items), 6)
    return EstimateTotal(price=total, currency=next(iter(currencies), None))
