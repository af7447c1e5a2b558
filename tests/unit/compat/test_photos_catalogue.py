"""Seed 004's ``/models``: cards built from the real catalogue for every background model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from conveyor.compat.photos.catalogue import model_answer, model_card, models_answer
from conveyor.compat.photos.errors import PhotoNotFound, seed_error_body
from conveyor.config import Settings
from conveyor.providers.catalog_setup import build_model_registry
from conveyor.recipes.product_photo import SEED_MODEL_IDS

KEY_VARIABLES = (
    "CONVEYOR_FAL_KEY",
    "FAL_KEY",
    "CONVEYOR_REPLICATE_API_TOKEN",
    "REPLICATE_API_TOKEN",
)


class UnusedCpu:
    async def run(self, limiter: str, fn: Any, /, *args: Any) -> Any:
        raise AssertionError("building the catalogue runs no engine")


@pytest.fixture
async def entries(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[dict[str, Any]]]:
    """The catalogue of a node with no provider key, as ``CatalogService.models()`` gives it."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    async with aiohttp.ClientSession() as http:
        registry = build_model_registry(Settings(_env_file=None), http=http, cpu=UnusedCpu())
        yield [adapter.catalogue_entry() for adapter in registry.all()]


async def test_every_background_model_is_listed_with_the_seed_fields(
    entries: list[dict[str, Any]],
) -> None:
    answer = models_answer(entries).model_dump()
    assert answer["success"] is True
    ids = [card["id"] for card in answer["models"]]
    # The default chain first, in its order; every seed id is there.
    assert ids[:6] == [
        "flux-kontext-lora-v2",
        "flux-kontext-lora-v1",
        "birefnet",
        "remove-background",
        "u2netp",
        "grabcut",
    ]
    assert set(SEED_MODEL_IDS) <= set(ids)
    background = {e["id"] for e in entries if e["kind"] == "background"}
    assert len(ids) == len(background)
    assert not {"local/finish", "finish", "enhance"} & set(ids)
    for card in answer["models"]:
        assert set(card) >= {
            "id", "name", "version", "provider", "endpoint", "dataset_notes", "pros", "cons",
            "spec", "tags", "supports_marketplaces",
        }  # fmt: skip
        assert set(card["spec"]) == {
            "guidance_scale", "num_inference_steps", "supports_alpha", "max_resolution",
            "memory_usage",
        }  # fmt: skip
        assert card["supports_marketplaces"] == ["yandex-market", "ozon", "wildberries"]


async def test_the_flux_cards_carry_the_seed_settings(entries: list[dict[str, Any]]) -> None:
    v2 = model_answer(entries, "flux-kontext-lora-v2").model_dump()
    assert v2["success"] is True
    card = v2["model"]
    assert (card["name"], card["version"], card["provider"], card["endpoint"]) == (
        "FLUX Kontext LoRA",
        "v2",
        "fal-ai",
        "fal-ai/flux-kontext-lora",
    )
    assert card["spec"] == {
        "guidance_scale": 3.5,
        "num_inference_steps": 50,
        "supports_alpha": True,
        "max_resolution": "1024x1024",
        "memory_usage": "medium",
    }
    assert card["tags"] == ["ecommerce", "background-removal", "enhanced"]
    assert card["available"] is False
    assert "CONVEYOR_FAL_KEY" in card["unavailable_reason"]
    v1_card = model_answer(entries, "fal/flux-kontext-lora-v1").model
    assert (v1_card.spec.num_inference_steps, v1_card.spec.guidance_scale) == (30, 2.5)


async def test_local_models_are_cards_too_and_available_offline(
    entries: list[dict[str, Any]],
) -> None:
    u2netp = model_answer(entries, "u2netp").model
    assert u2netp.provider == "local"
    assert u2netp.available is True
    assert u2netp.spec.guidance_scale is None
    assert u2netp.spec.num_inference_steps is None
    assert u2netp.spec.max_resolution == "images up to 64 MP"
    assert u2netp.pros  # the catalogue's own pros
    grabcut = model_answer(entries, "grabcut").model
    assert "last-resort" in grabcut.tags


def test_an_operator_model_gets_a_card_without_guesses() -> None:
    entry = {
        "id": "acme/cutter",
        "kind": "background",
        "provider": "acme",
        "title": "Acme cutter",
        "description": "Cuts things out.",
        "pros": ["fast"],
        "cons": [],
        "tags": ["background"],
        "spec": {"defaults": {"num_inference_steps": True}},
        "available": True,
    }
    card = model_card(entry)
    assert (card.id, card.name, card.version, card.endpoint) == (
        "acme/cutter",
        "Acme cutter",
        None,
        "acme/cutter",
    )
    assert card.spec.num_inference_steps is None  # a boolean is not a step count
    assert card.dataset_notes == "Cuts things out."


async def test_an_unknown_or_non_background_model_is_a_seed_404(
    entries: list[dict[str, Any]],
) -> None:
    for name in ("no-such-model", "local/finish", "openai/vision"):
        with pytest.raises(PhotoNotFound) as missing:
            model_answer(entries, name)
        assert missing.value.status_code == 404
        assert seed_error_body(missing.value)["code"] == 4004
