"""Seed 004's ``/models``: every background model of the catalogue, as the seed's card.

The cards are built from catalogue entries (``CatalogService.models(kind="background")``),
local models included, so what ``/models`` lists is what ``modelId`` can name. A card's id
is the seed's own (``flux-kontext-lora-v2``, ``birefnet``, ``remove-background``,
``u2netp``, ``grabcut``; ``recipes.product_photo.SEED_MODEL_IDS``), else the catalogue id.
Pros, cons and tags are the catalogue's; what the catalogue does not say (the seed's model
name and version, its endpoint, memory use, resolution) comes from ``SEED_FACTS`` for the
built-in models and stays empty (``null``) for others rather than being guessed.
``guidance_scale`` and ``num_inference_steps`` are the model's defaults, so they are set for
the diffusion models (FLUX Kontext LoRA v1: 30 / 2.5, v2: 50 / 3.5) and ``null`` otherwise.
Two fields are added to the seed's card: ``available`` and ``unavailable_reason``, so a
client sees that FLUX needs a fal.ai key before choosing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.compat.photos.errors import PhotoNotFound
from conveyor.compat.photos.schemas import ModelCard, ModelOut, ModelsOut, ModelSpecOut
from conveyor.recipes.product_photo import (
    DEFAULT_BACKGROUND_FALLBACKS,
    DEFAULT_BACKGROUND_MODEL,
    MARKETPLACES,
    SEED_MODEL_IDS,
    catalogue_model_id,
)

BACKGROUND_KIND = "background"
# The seed names fal "fal-ai"; other providers keep their catalogue name.
_PROVIDER_NAMES = {"fal": "fal-ai"}
_CATALOGUE_TO_SEED = {catalogue: seed for seed, catalogue in SEED_MODEL_IDS.items()}
# The order cards are listed in: the default chain first, then v1, then the rest by id.
_ORDER = [DEFAULT_BACKGROUND_MODEL, "fal/flux-kontext-lora-v1", *DEFAULT_BACKGROUND_FALLBACKS]


@dataclass(frozen=True, slots=True)
class SeedFacts:
    """What the seed's card says that the catalogue does not."""

    name: str
    version: str | None
    endpoint: str
    dataset_notes: str
    supports_alpha: bool
    max_resolution: str | None
    memory_usage: str | None


SEED_FACTS: dict[str, SeedFacts] = {
    "fal/flux-kontext-lora-v2": SeedFacts(
        "FLUX Kontext LoRA",
        "v2",
        "fal-ai/flux-kontext-lora",
        "Improved model trained on an extended dataset (seed 004); 50 steps, guidance 3.5",
        True,
        "1024x1024",
        "medium",
    ),
    "fal/flux-kontext-lora-v1": SeedFacts(
        "FLUX Kontext LoRA",
        "v1",
        "fal-ai/flux-kontext-lora",
        "Base model (seed 004); 30 steps, guidance 2.5; good on simple images",
        True,
        "1024x1024",
        "medium",
    ),
    "fal/birefnet": SeedFacts(
        "BiRefNet",
        "General Use (Light)",
        "fal-ai/birefnet",
        "Dedicated segmentation model; seed 004's automatic fallback when LoRA fails",
        True,
        "1024x1024",
        "low",
    ),
    "replicate/remove-background": SeedFacts(
        "Background removal (Replicate)",
        None,
        "bria/remove-background",
        "A hosted background-removal model; the version is set by "
        "CONVEYOR_REPLICATE_BACKGROUND_MODEL",
        True,
        None,
        None,
    ),
    "local/u2netp": SeedFacts(
        "U²-Net-p",
        "u2netp",
        "local/u2netp",
        "4.6 MB salient-object model run offline on this server's CPU",
        True,
        None,
        "low",
    ),
    "local/grabcut": SeedFacts(
        "GrabCut",
        None,
        "local/grabcut",
        "No model: OpenCV GrabCut seeded from the border colour; the last resort",
        True,
        None,
        "low",
    ),
}


def seed_model_id(catalogue_id: str) -> str:
    """The seed's id of a catalogue model (``fal/birefnet`` → ``birefnet``)."""
    return _CATALOGUE_TO_SEED.get(catalogue_id, catalogue_id)


def model_card(entry: Mapping[str, Any]) -> ModelCard:
    """The seed's card of one catalogue entry (see the module docstring)."""
    catalogue_id = str(entry["id"])
    spec: Mapping[str, Any] = entry.get("spec") or {}
    defaults: Mapping[str, Any] = spec.get("defaults") or {}
    facts = SEED_FACTS.get(catalogue_id)
    provider = str(entry.get("provider") or catalogue_id.split("/", 1)[0])
    return ModelCard(
        id=seed_model_id(catalogue_id),
        name=facts.name if facts else str(entry.get("title") or catalogue_id),
        version=facts.version if facts else None,
        provider=_PROVIDER_NAMES.get(provider, provider),
        endpoint=facts.endpoint if facts else catalogue_id,
        dataset_notes=facts.dataset_notes if facts else str(entry.get("description") or ""),
        pros=[str(p) for p in entry.get("pros") or []],
        cons=[str(c) for c in entry.get("cons") or []],
        spec=ModelSpecOut(
            guidance_scale=_number(defaults.get("guidance_scale")),
            num_inference_steps=_integer(defaults.get("num_inference_steps")),
            supports_alpha=facts.supports_alpha if facts else bool(spec.get("supports_alpha")),
            max_resolution=(facts.max_resolution if facts else None)
            or _text(spec.get("max_resolution")),
            memory_usage=facts.memory_usage if facts else None,
        ),
        tags=[str(t) for t in entry.get("tags") or []],
        supports_marketplaces=list(MARKETPLACES),
        available=bool(entry.get("available", True)),
        unavailable_reason=_text(entry.get("unavailable_reason")),
    )


def model_cards(entries: Iterable[Mapping[str, Any]]) -> list[ModelCard]:
    """Cards of the background models among ``entries``, the default chain first."""
    background = [e for e in entries if e.get("kind") == BACKGROUND_KIND]

    def place(entry: Mapping[str, Any]) -> tuple[int, str]:
        model_id = str(entry["id"])
        return (_ORDER.index(model_id) if model_id in _ORDER else len(_ORDER), model_id)

    return [model_card(entry) for entry in sorted(background, key=place)]


def models_answer(entries: Iterable[Mapping[str, Any]]) -> ModelsOut:
    """``GET /models``."""
    return ModelsOut(success=True, models=model_cards(entries))


def model_answer(entries: Iterable[Mapping[str, Any]], model_id: str) -> ModelOut:
    """``GET /models/{model_id}``: by the seed's id or the catalogue id; 404 in the seed's body."""
    wanted = catalogue_model_id(model_id)
    for entry in entries:
        if entry.get("kind") == BACKGROUND_KIND and entry.get("id") == wanted:
            return ModelOut(success=True, model=model_card(entry))
    raise PhotoNotFound(f"Модель не найдена: no background model {model_id!r}; see GET /models")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
