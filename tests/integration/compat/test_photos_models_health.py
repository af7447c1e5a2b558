"""``/models`` and ``/health`` of seed 004 against a running server, on both databases.

``/models`` shows every background model with the seed's fields, local ones included, and a
``modelId`` works as the seed's id or the catalogue id. ``/health`` comes from real checks:
offline the providers are down for want of a key (the local fallback is up); with the
simulator they are up until fal's circuit breaker opens.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.compat.photos_stack import mug_photo, open_photo_stack

CARD_FIELDS = {
    "id",
    "name",
    "version",
    "provider",
    "endpoint",
    "dataset_notes",
    "pros",
    "cons",
    "spec",
    "tags",
    "supports_marketplaces",
}
SPEC_FIELDS = {
    "guidance_scale",
    "num_inference_steps",
    "supports_alpha",
    "max_resolution",
    "memory_usage",
}


async def test_models_are_the_seed_cards_and_either_id_chooses_one(
    database_url: str, tmp_path: Path
) -> None:
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        answer = (await stack.http.get("/models")).json()
        assert answer["success"] is True
        cards = {card["id"]: card for card in answer["models"]}
        assert set(cards) >= {
            "flux-kontext-lora-v2",
            "flux-kontext-lora-v1",
            "birefnet",
            "remove-background",
            "u2netp",
            "grabcut",
        }
        for card in cards.values():
            assert set(card) >= CARD_FIELDS
            assert set(card["spec"]) >= SPEC_FIELDS
            assert card["supports_marketplaces"] == ["yandex-market", "ozon", "wildberries"]
        v2 = cards["flux-kontext-lora-v2"]
        assert (v2["provider"], v2["version"], v2["endpoint"]) == (
            "fal-ai",
            "v2",
            "fal-ai/flux-kontext-lora",
        )
        assert (v2["spec"]["guidance_scale"], v2["spec"]["num_inference_steps"]) == (3.5, 50)
        assert v2["available"] is False  # no fal key here
        assert cards["u2netp"]["available"] is True

        by_seed_id = (await stack.http.get("/models/flux-kontext-lora-v2")).json()
        by_catalogue_id = (await stack.http.get("/models/fal/flux-kontext-lora-v2")).json()
        assert by_seed_id == by_catalogue_id
        assert by_seed_id["success"] is True
        assert by_seed_id["model"]["id"] == "flux-kontext-lora-v2"

        for model_id in ("u2netp", "local/u2netp"):
            started = await stack.http.post(
                "/process_single",
                files={"file": ("mug.jpg", mug_photo())},
                data={"modelId": model_id},
            )
            assert started.status_code == 200, started.text
            done = await stack.wait_for(started.json()["processing_id"])
            assert done["background_model"] == "local/u2netp"
            assert done["fallbacks"] == []  # started at u2netp: no paid model before it


async def test_health_offline_says_which_services_are_down_and_why(
    database_url: str, tmp_path: Path
) -> None:
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        answer = await stack.http.get("/health")
        assert answer.status_code == 200
        health = answer.json()
        assert health["status"] == "degraded"
        assert health["services"] == {"openai": False, "fal_ai": False, "database": True}
        assert "no API key" in health["reasons"]["openai"]
        assert "no API key" in health["reasons"]["fal_ai"]
        assert health["local_fallback"] is True
        assert health["timestamp"].endswith("Z")


async def test_health_with_the_simulator_follows_fal_circuit_breaker(
    database_url: str, tmp_path: Path
) -> None:
    async with open_photo_stack(database_url, tmp_path / "data", simulate=True) as stack:
        health = (await stack.http.get("/health")).json()
        assert health["status"] == "healthy"
        assert health["services"] == {"openai": True, "fal_ai": True, "database": True}
        assert health["reasons"] == {}

        # fal's requests fail five times in a row (as a 5xx or a timeout would count).
        limits = stack.runtime.models.get("fal/birefnet").limits
        for _ in range(limits.circuit.threshold):
            limits.circuit.record("server_error", probe=False)
        health = (await stack.http.get("/health")).json()
        assert health["status"] == "degraded"
        assert health["services"]["fal_ai"] is False
        assert "circuit breaker is open" in health["reasons"]["fal_ai"]
        assert health["services"]["openai"] is True
