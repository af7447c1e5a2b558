"""The ``vehicle-damage`` recipe on a scripted ``ItemRun``: no database, no network."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest
from PIL import Image

from conveyor.core.clock import ManualClock
from conveyor.errors import ItemFailed, TemporaryFailure, ValidationFailed
from conveyor.net.errors import FetchFailed, NotAnImage, UrlRefused
from conveyor.providers.base import FileInput, ModelOutput, StoredFile
from conveyor.recipes.vehicle_damage import (
    VehicleDamageOptions,
    VehicleDamageRecipe,
    language_label,
)


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


Answer = Callable[[str, dict[str, Any]], Any]


def describe_and_mark(name: str, inputs: dict[str, Any]) -> str:
    if name == "describe":
        return f"<p>Dented bumper seen in {len(inputs['images'])} photo(s).</p>"
    return f"<p>[{name.split(':')[1]}] Dented bumper.</p>"


class FakeFiles:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    async def read(self, file: FileInput, *, max_bytes: int | None = None) -> bytes:
        return self.blobs[file.asset_id or ""]


class FakeRun:
    """``ItemRun`` with scripted fetches and model answers; records what was asked."""

    def __init__(
        self,
        item: dict[str, Any],
        *,
        languages: Sequence[str] = ("en",),
        options: dict[str, Any] | None = None,
        fetch: dict[str, bytes | Exception] | None = None,
        answer: Answer = describe_and_mark,
        clock: ManualClock | None = None,
    ) -> None:
        self.item_id = "item-1"
        self.job_id = "job-1"
        self.client_id = "client-1"
        self.key = item.get("lot_id")
        self.input = item
        self.options = VehicleDamageOptions.model_validate(options or {}).model_dump()
        self.languages = list(languages)
        self.fetch = fetch or {}
        self.answer = answer
        self.clock = clock or ManualClock()
        self.blobs: dict[str, bytes] = {}
        self.files = FakeFiles(self.blobs)
        self.steps: list[tuple[str, list[str], dict[str, Any]]] = []
        self.stages: list[str] = []
        self.warnings: list[str] = []

    async def step(self, name: str, models: Sequence[str], inputs: dict[str, Any]) -> ModelOutput:
        self.steps.append((name, list(models), inputs))
        result = self.answer(name, inputs)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, Exception):
            raise result
        return ModelOutput(text=result, model_id=models[0])

    async def set_stage(self, stage: str) -> None:
        self.stages.append(stage)

    async def fetch_input(self, url: str, *, images_only: bool = False) -> StoredFile:
        found = self.fetch.get(url, png())
        if isinstance(found, Exception):
            raise found
        if images_only and not found.startswith(b"\x89PNG"):
            raise NotAnImage("cdn did not send an image (got text/html)", mime="text/html")
        asset_id = f"asset-{len(self.blobs) + 1}"
        self.blobs[asset_id] = found
        return StoredFile(asset_id, "image/png", len(found), "0" * 64)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def now(self) -> datetime:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)


def lot(*urls: str, info: str = "2021 BMW X5, front damage") -> dict[str, Any]:
    return {"lot_id": "car-1", "additional_info": info, "images": [{"url": u} for u in urls]}


recipe = VehicleDamageRecipe(["openai/vision", "genapi/gpt-4o-mini"], ["openai/translate"])


async def test_the_lot_is_described_in_english_then_translated() -> None:
    run = FakeRun(lot("https://cdn/a.jpg", "https://cdn/b.jpg"), languages=["en", "ru", "en-GB"])
    result = await recipe.run(run)

    name, models, inputs = run.steps[0]
    assert (name, models) == ("describe", ["openai/vision", "genapi/gpt-4o-mini"])
    assert "Additional info: 2021 BMW X5, front damage" in inputs["prompt"]
    assert "2 attached photos" in inputs["prompt"]
    assert "English" in inputs["prompt"]
    assert inputs["images"] == [
        FileInput(asset_id="asset-1", mime_type="image/png"),
        FileInput(asset_id="asset-2", mime_type="image/png"),
    ]
    [(translate, chain, asked)] = run.steps[1:]
    assert (translate, chain) == ("translate:ru", ["openai/translate"])
    assert asked["target_language"] == "Russian"
    assert asked["text"] == "<p>Dented bumper seen in 2 photo(s).</p>"
    assert "into Russian" in asked["system_prompt"]
    assert run.stages == ["describing", "translating"]
    assert result == {
        "lot_id": "car-1",
        "descriptions": [
            {"language": "en", "damages": "<p>Dented bumper seen in 2 photo(s).</p>"},
            {"language": "ru", "damages": "<p>[ru] Dented bumper.</p>"},
            {"language": "en-GB", "damages": "<p>Dented bumper seen in 2 photo(s).</p>"},
        ],
        "warnings": [],
        "language_warnings": {},
    }


async def test_model_output_is_sanitised_whatever_it_contains() -> None:
    def hostile(name: str, inputs: dict[str, Any]) -> str:
        if name == "describe":
            return '<h1>Report</h1><script>alert(1)</script><p onclick="x()">**Hood** dent</p>'
        return "<img src=x onerror=alert(1)><p>перевод</p>"

    run = FakeRun(lot("https://cdn/a.jpg"), languages=["en", "ru"], answer=hostile)
    result = await recipe.run(run)
    english, russian = (d["damages"] for d in result["descriptions"])
    assert "<script" not in english
    assert "alert" not in english
    assert "onclick" not in english
    assert "<b>Hood</b>" in english
    assert russian == "<p>перевод</p>"


async def test_only_english_needs_no_translation_stage() -> None:
    run = FakeRun(lot("https://cdn/a.jpg"))
    result = await recipe.run(run)
    assert [s[0] for s in run.steps] == ["describe"]
    assert run.stages == ["describing"]
    assert [d["language"] for d in result["descriptions"]] == ["en"]


async def test_unusable_images_are_skipped_with_a_reason_each() -> None:
    run = FakeRun(
        lot("https://ok/a.jpg", "http://10.0.0.1/b.jpg", "https://cdn/page", "https://cdn/tiny"),
        fetch={
            "http://10.0.0.1/b.jpg": UrlRefused("the host is a private address 10.0.0.1"),
            "https://cdn/page": b"<html>",
            "https://cdn/tiny": png((1, 1)),
        },
    )
    result = await recipe.run(run)
    assert result["warnings"] == [
        "image 4: image is only 1×1 pixels; the description may be poor",
        "image 2: URL refused: the host is a private address 10.0.0.1; skipped",
        "image 3: cdn did not send an image (got text/html); skipped",
    ]
    assert run.warnings == result["warnings"]
    assert len(run.steps[0][2]["images"]) == 2  # the good one and the tiny one


async def test_a_corrupt_image_is_not_sent_to_the_model() -> None:
    run = FakeRun(
        lot("https://cdn/a.jpg", "https://cdn/broken.png"),
        fetch={"https://cdn/broken.png": png()[:60] + b"\x00" * 40},
    )
    result = await recipe.run(run)
    assert len(run.steps[0][2]["images"]) == 1
    assert result["warnings"][0].startswith("image 2: corrupt image/png image")


async def test_a_lot_with_no_usable_image_fails_without_calling_a_model() -> None:
    run = FakeRun(
        lot("http://169.254.169.254/", "https://cdn/x"),
        fetch={
            "http://169.254.169.254/": UrlRefused("the host is a link-local address"),
            "https://cdn/x": NotAnImage("not an image (looks like text/html)", mime="text/html"),
        },
    )
    with pytest.raises(ItemFailed) as failed:
        await recipe.run(run)
    assert failed.value.code == "NO_USABLE_IMAGES"
    assert failed.value.message == (
        "no usable image in lot 'car-1': image 1: URL refused: the host is a link-local "
        "address; image 2: not an image (looks like text/html)"
    )
    assert run.steps == []


async def test_images_that_may_come_back_make_the_lot_retry_later() -> None:
    run = FakeRun(
        lot("https://cdn/a.jpg", "http://10.0.0.1/b.jpg"),
        fetch={
            "https://cdn/a.jpg": FetchFailed("cdn answered 503", retryable=True, http_status=503),
            "http://10.0.0.1/b.jpg": UrlRefused("the host is a private address 10.0.0.1"),
        },
    )
    with pytest.raises(FetchFailed) as failed:
        await recipe.run(run)
    assert failed.value.retryable
    assert "image 1: cdn answered 503" in failed.value.message


async def test_the_budget_gives_late_languages_the_english_text() -> None:
    clock = ManualClock()
    slow = asyncio.Event()

    async def answer(name: str, inputs: dict[str, Any]) -> str:
        if name == "translate:de":
            await slow.wait()  # never set: German never arrives
        return describe_and_mark(name, inputs)

    run = FakeRun(
        lot("https://cdn/a.jpg"),
        languages=["en", "ru", "de"],
        options={"translation_budget": 45},
        answer=answer,
        clock=clock,
    )
    task = asyncio.create_task(recipe.run(run))
    while clock.sleepers == 0 or len(run.steps) < 3:
        await asyncio.sleep(0)
    clock.advance(44.9)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.1)
    result = await task

    by_language = {d["language"]: d["damages"] for d in result["descriptions"]}
    assert by_language["ru"] == "<p>[ru] Dented bumper.</p>"
    assert by_language["de"] == by_language["en"]
    warning = (
        "translation to German (de) did not finish within the 45 s translation budget; "
        "the English text is given instead"
    )
    assert result["warnings"] == [warning]
    assert result["language_warnings"] == {"de": warning}


async def test_a_translation_that_fails_falls_back_but_a_retryable_one_waits_in_batches() -> None:
    def broken(name: str, inputs: dict[str, Any]) -> Any:
        if name == "translate:ja":
            return ItemFailed("step 'translate:ja' failed: openai/translate: invalid API key")
        if name == "translate:ko":
            return TemporaryFailure("step 'translate:ko': openai/translate: 503")
        return describe_and_mark(name, inputs)

    batch = FakeRun(lot("https://cdn/a.jpg"), languages=["en", "ja", "ko", "fr"], answer=broken)
    with pytest.raises(TemporaryFailure):
        await recipe.run(batch)
    # Every other translation ran to the end first, so a retry redoes only Korean.
    assert sorted(s[0] for s in batch.steps[1:]) == ["translate:fr", "translate:ja", "translate:ko"]

    sync = FakeRun(
        lot("https://cdn/a.jpg"),
        languages=["en", "ja", "ko"],
        options={"translation_budget": 45},
        answer=broken,
    )
    result = await recipe.run(sync)
    assert result["language_warnings"]["ja"].startswith(
        "translation to Japanese (ja) failed (step 'translate:ja' failed: "
    )
    assert "Korean (ko) failed" in result["language_warnings"]["ko"]
    assert result["descriptions"][1]["damages"] == result["descriptions"][0]["damages"]


async def test_an_empty_description_fails_the_lot() -> None:
    run = FakeRun(lot("https://cdn/a.jpg"), answer=lambda name, inputs: "<script>x</script>  ")
    with pytest.raises(ItemFailed) as failed:
        await recipe.run(run)
    assert failed.value.code == "EMPTY_DESCRIPTION"


def test_options_record_the_model_chains_and_check_lots() -> None:
    options = recipe.parse_options({})
    assert options.model_dump() == {
        "describe_models": ["openai/vision", "genapi/gpt-4o-mini"],
        "translate_models": ["openai/translate"],
        "translation_budget": None,
    }
    chosen = recipe.parse_options({"translate_models": ["local/apertium"]})
    assert recipe.models(chosen) == ["openai/vision", "genapi/gpt-4o-mini", "local/apertium"]
    with pytest.raises(ValidationFailed, match="translation_budget"):
        recipe.parse_options({"translation_budget": -1})
    with pytest.raises(ValidationFailed) as too_many:
        recipe.parse_items([{"lot_id": "x", "images": [{"url": "https://a/b"}] * 21}])
    assert "at most 20 items" in too_many.value.details["items"][0]["error"]
    with pytest.raises(ValidationFailed) as not_http:
        recipe.parse_items([{"lot_id": "x", "images": [{"url": "file:///etc/passwd"}]}])
    assert "images.0.url" in not_http.value.details["items"][0]["error"]
    [parsed] = recipe.parse_items([{"lot_id": " id ", "images": [{"url": "HTTPS://a/b"}]}])
    assert recipe.item_key(parsed) == " id "


def test_language_labels_name_the_language_and_its_code() -> None:
    assert language_label("ru") == "Russian (ru)"
    assert language_label("pt-BR") == "Portuguese (Brazil, pt-BR)"
