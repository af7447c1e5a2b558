"""The ``product-photo`` recipe on a scripted ``ItemRun``: no database, no network.

The fake tries a step's models in order as the engine does: a model scripted to fail is
skipped (its reason kept), the first other one answers. So these tests see which chain the
recipe asks for and what it does with what comes back.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import pytest
from PIL import Image

from conveyor.core.clock import ManualClock
from conveyor.errors import TemporaryFailure, ValidationFailed
from conveyor.net.errors import NotAnImage
from conveyor.providers.base import FileInput, ModelOutput, StoredFile
from conveyor.recipes.base import ItemFailed
from conveyor.recipes.product_analysis import ANALYSIS_FIELDS
from conveyor.recipes.product_photo import (
    DEFAULT_PROMPT,
    ProductPhotoOptions,
    ProductPhotoRecipe,
    background_chain,
    declared_inputs,
)

REMOTE_CHAIN = [
    "fal/flux-kontext-lora-v2",
    "fal/birefnet",
    "replicate/remove-background",
    "local/u2netp",
    "local/grabcut",
]
ANALYSIS = {
    "category": "kitchen and tableware",
    "subcategory": "coffee mug",
    "brand": None,
    "product_name": None,
    "description": "A teal mug.",
    "colors": ["teal"],
    "materials": [],
    "key_features": [],
    "recommended_prompt": "Professional product photo of a teal coffee mug on white",
}


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (0, 128, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def stored(asset_id: str) -> StoredFile:
    return StoredFile(asset_id, "image/png", 1234, "0" * 64)


class FakeFiles:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    async def read(self, file: FileInput, *, max_bytes: int | None = None) -> bytes:
        return self.blobs[file.asset_id or ""]


class FakeRun:
    """``ItemRun`` whose steps answer like models would; records stages, steps, warnings."""

    def __init__(
        self,
        item: dict[str, Any],
        options: dict[str, Any] | None = None,
        *,
        recipe: ProductPhotoRecipe,
        failing: dict[str, Exception | str] | None = None,
        analysis: Any = ANALYSIS,
        blobs: dict[str, bytes] | None = None,
    ) -> None:
        self.item_id, self.job_id, self.client_id = "item-1", "job-1", "client-1"
        self.key = item.get("filename")
        self.input = item
        # As the engine does: the job stores the options the recipe parsed at creation.
        self.options = recipe.parse_options(options or {}).model_dump(mode="json")
        self.languages: list[str] = []
        self.files = FakeFiles({"photo-1": png(), **(blobs or {})})
        self.failing = failing or {}
        self.analysis = analysis
        self.clock = ManualClock()
        self.steps: list[tuple[str, list[str], dict[str, Any]]] = []
        self.stages: list[str] = []
        self.warnings: list[str] = []
        self.fetched: list[tuple[str, bool]] = []
        self.tried: dict[str, list[str]] = {}

    async def step(self, name: str, models: Sequence[str], inputs: dict[str, Any]) -> ModelOutput:
        self.steps.append((name, list(models), inputs))
        reasons = []
        for model in models:
            failure = self.failing.get(model)
            if isinstance(failure, Exception):
                raise failure
            if failure is not None:
                reasons.append(f"{model}: {failure}")
                continue
            self.tried[name] = reasons
            return self._answer(name, model)
        raise ItemFailed(f"step {name!r} failed: " + "; ".join(reasons), code="STEP_FAILED")

    def _answer(self, name: str, model: str) -> ModelOutput:
        if name == "analysis":
            if isinstance(self.analysis, str):
                return ModelOutput(text=self.analysis, model_id=model)
            return ModelOutput(data=self.analysis, model_id=model)
        made = stored(f"{name}-by-{model.replace('/', '-')}")
        data = {"width": 1000, "height": 1000} if name == "final" else {"levels": "done"}
        return ModelOutput(files=[made], data=data, model_id=model)

    async def set_stage(self, stage: str) -> None:
        self.stages.append(stage)

    async def fetch_input(self, url: str, *, images_only: bool = False) -> StoredFile:
        self.fetched.append((url, images_only))
        if url.endswith(".html"):
            raise NotAnImage("not an image (looks like text/html)", mime="text/html")
        self.files.blobs["fetched-1"] = png((800, 600))
        return stored("fetched-1")

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def now(self) -> datetime:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)


def photo(asset_id: str = "photo-1", filename: str | None = "mug.jpg") -> dict[str, Any]:
    return {"image": {"asset_id": asset_id}, "filename": filename}


def recipe(finish_inputs: Collection[str] = ("image", "preset", "shadow")) -> ProductPhotoRecipe:
    return ProductPhotoRecipe(finish_inputs=finish_inputs)


def names(run: FakeRun) -> list[str]:
    return [name for name, _, _ in run.steps]


async def test_stages_run_in_order_and_the_result_names_every_image() -> None:
    run = FakeRun(photo(), recipe=recipe())
    result = await recipe().run(run)

    assert run.stages == ["analyzing", "background", "final"]
    assert names(run) == ["analysis", "background", "final"]
    analysis_step, background_step, final_step = run.steps
    assert analysis_step[1] == ["openai/vision", "local/analyze"]
    assert background_step[1] == REMOTE_CHAIN
    photo_input = FileInput(asset_id="photo-1", mime_type="image/png")
    assert background_step[2] == {
        "image": photo_input,
        "prompt": ANALYSIS["recommended_prompt"],
    }
    assert final_step[1] == ["local/finish"]
    assert final_step[2] == {
        "image": FileInput(
            asset_id="background-by-fal-flux-kontext-lora-v2", mime_type="image/png"
        ),
        "preset": "yandex-market",
        "background": "white",
        "format": "png",
        "quality": 92,
        "shadow": True,
    }
    assert result["analysis"] == ANALYSIS
    assert result["analysis_model"] == "openai/vision"
    assert result["original"] == {
        "asset_id": "photo-1",
        "mime_type": "image/png",
        "size": len(png()),
        "width": 64,
        "height": 48,
    }
    assert result["background"]["asset_id"] == "background-by-fal-flux-kontext-lora-v2"
    assert result["background_model"] == "fal/flux-kontext-lora-v2"
    assert result["final"] == {
        "asset_id": "final-by-local-finish",
        "mime_type": "image/png",
        "size": 1234,
        "width": 1000,
        "height": 1000,
    }
    assert result["prompt_source"] == "analysis"
    assert result["shadow"] is True
    assert result["enhanced"] is None
    assert run.warnings == []


async def test_a_failing_model_falls_down_the_chain() -> None:
    run = FakeRun(
        photo(),
        recipe=recipe(),
        failing={
            "fal/flux-kontext-lora-v2": "simulated generation failure",
            "fal/birefnet": "invalid fal.ai key",
        },
    )
    result = await recipe().run(run)
    assert result["background_model"] == "replicate/remove-background"
    assert run.tried["background"] == [
        "fal/flux-kontext-lora-v2: simulated generation failure",
        "fal/birefnet: invalid fal.ai key",
    ]
    # The final is made from the fallback's cut-out.
    assert run.steps[-1][2]["image"].asset_id == "background-by-replicate-remove-background"


async def test_offline_the_local_models_carry_the_photo() -> None:
    no_key = "no API key"
    run = FakeRun(
        photo(),
        recipe=recipe(),
        failing={
            "openai/vision": no_key,
            **{model: no_key for model in REMOTE_CHAIN[:3]},
        },
        analysis={**ANALYSIS, "brand": None, "recommended_prompt": None},
    )
    result = await recipe().run(run)
    assert result["analysis_model"] == "local/analyze"
    assert result["background_model"] == "local/u2netp"
    assert result["final_model"] == "local/finish"
    assert result["prompt_source"] == "default"


def test_the_chain_starts_at_the_chosen_model() -> None:
    assert background_chain(None, None) == REMOTE_CHAIN
    assert background_chain("auto", None) == REMOTE_CHAIN
    assert background_chain("flux-kontext-lora-v1", None) == [
        "fal/flux-kontext-lora-v1",
        *REMOTE_CHAIN[1:],
    ]
    assert background_chain(None, "v1")[0] == "fal/flux-kontext-lora-v1"
    assert background_chain("flux-kontext-lora-v2", "v1")[0] == "fal/flux-kontext-lora-v2"
    # A fallback chosen by hand starts the chain there: no paid model after a local one.
    assert background_chain("u2netp", None) == ["local/u2netp", "local/grabcut"]
    assert background_chain("fal/birefnet", None) == REMOTE_CHAIN[1:]
    assert background_chain("acme/cutter", None) == ["acme/cutter", *REMOTE_CHAIN[1:]]
    configured = background_chain(None, None, default="local/u2netp", fallbacks=["local/grabcut"])
    assert configured == ["local/u2netp", "local/grabcut"]


def test_options_record_the_chains_the_job_was_made_with() -> None:
    configured = ProductPhotoRecipe(
        ["local/analyze"], "fal/flux-kontext-lora-v1", ["local/u2netp"], finish_inputs=()
    )
    parsed = configured.parse_options({"lora_version": "v2", "enhance": "true"})
    assert isinstance(parsed, ProductPhotoOptions)
    assert parsed.model == "fal/flux-kontext-lora-v2"
    assert parsed.background_models == ["fal/flux-kontext-lora-v2", "local/u2netp"]
    assert parsed.analysis_models == ["local/analyze"]
    assert parsed.enhance is True
    # What the job stores reads back as the same options in the worker.
    stored_options = parsed.model_dump(mode="json")
    assert ProductPhotoOptions.model_validate(stored_options) == parsed
    assert configured.models(parsed) == [
        "local/analyze",
        "fal/flux-kontext-lora-v2",
        "local/u2netp",
        "local/finish",
        "local/enhance",
    ]
    no_analysis = configured.parse_options({"analysis": False, "model": "grabcut"})
    # grabcut is not among this recipe's fallbacks: all of them follow it.
    assert configured.models(no_analysis) == ["local/grabcut", "local/u2netp", "local/finish"]
    chosen = configured.parse_options({"background_models": ["local/grabcut"]})
    assert configured.models(chosen)[1:] == ["local/grabcut", "local/finish"]


def test_bad_options_and_items_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationFailed, match="marketplace"):
        recipe().parse_options({"marketplace": "amazon"})
    with pytest.raises(ValidationFailed, match="not both"):
        recipe().parse_options({"model": "u2netp", "background_models": ["local/grabcut"]})
    with pytest.raises(ValidationFailed, match="lora_version"):
        recipe().parse_options({"lora_version": "v3"})
    with pytest.raises(ValidationFailed) as both:
        recipe().parse_items([{"image": {"asset_id": "a", "url": "https://x/y.jpg"}}])
    assert "exactly one of asset_id or url" in both.value.details["items"][0]["error"]
    [item] = recipe().parse_items([photo("a1", "shoe.png")])
    assert recipe().item_key(item) == "shoe.png"
    assert recipe().file_inputs(item) == ["a1"]


async def test_the_prompt_is_custom_then_the_analysis_then_the_default() -> None:
    custom = FakeRun(
        photo(), {"custom_prompt_text": "  on white, keep the label  "}, recipe=recipe()
    )
    result = await recipe().run(custom)
    assert custom.steps[1][2]["prompt"] == "on white, keep the label"
    assert result["prompt_source"] == "custom"

    no_analysis = FakeRun(photo(), {"analysis": False}, recipe=recipe())
    result = await recipe().run(no_analysis)
    assert names(no_analysis) == ["background", "final"]
    assert no_analysis.stages == ["background", "final"]
    assert no_analysis.steps[0][2]["prompt"] == DEFAULT_PROMPT
    assert result["analysis"] is None


async def test_the_analysis_prompt_asks_for_the_seed_json_and_answers_are_read_loosely() -> None:
    fenced = (
        "Here is the analysis:\n```json\n"
        '{"category": "electronics", "brand": "Apple", "colors": "black, titanium", '
        '"key_features": ["Face ID", "", null, "Face ID"], "recommended_prompt": "  Put it on '
        'white  "}\n```'
    )
    run = FakeRun(photo(), recipe=recipe(), analysis=fenced)
    result = await recipe().run(run)
    inputs = run.steps[0][2]
    for field in ANALYSIS_FIELDS:
        assert f'"{field}"' in inputs["prompt"]
    assert inputs["response_format"] == {"type": "json_object"}
    assert inputs["images"] == [inputs["image"]]
    assert result["analysis"] == {
        "category": "electronics",
        "subcategory": None,
        "brand": "Apple",
        "product_name": None,
        "description": None,
        "colors": ["black", "titanium"],
        "materials": [],
        "key_features": ["Face ID"],
        "recommended_prompt": "Put it on white",
    }
    assert run.steps[1][2]["prompt"] == "Put it on white"


async def test_an_analysis_that_is_not_json_or_fails_leaves_a_warning_and_goes_on() -> None:
    prose = FakeRun(photo(), recipe=recipe(), analysis="I see a mug.")
    result = await recipe().run(prose)
    assert result["analysis"] is None
    assert prose.warnings == [
        "product analysis by openai/vision was not JSON; the photo was processed without it"
    ]
    assert result["prompt_source"] == "default"

    busy = FakeRun(
        photo(),
        recipe=recipe(),
        failing={"openai/vision": TemporaryFailure("step 'analysis': openai/vision: 503")},
    )
    result = await recipe().run(busy)
    assert result["analysis"] is None
    assert result["background_model"] == "fal/flux-kontext-lora-v2"
    assert busy.warnings[0].startswith("product analysis failed (step 'analysis': ")


async def test_enhance_corrects_the_cutout_before_the_final() -> None:
    run = FakeRun(photo(), {"enhance": True}, recipe=recipe())
    result = await recipe().run(run)
    assert names(run) == ["analysis", "background", "enhance", "final"]
    _, models, inputs = run.steps[2]
    assert models == ["local/enhance"]
    assert inputs["image"].asset_id == "background-by-fal-flux-kontext-lora-v2"
    assert run.steps[3][2]["image"].asset_id == "enhance-by-local-enhance"
    assert result["enhanced"]["asset_id"] == "enhance-by-local-enhance"
    assert result["enhance"] == {"levels": "done"}
    # The cut-out as the background model made it stays in the result too.
    assert result["background"]["asset_id"] == "background-by-fal-flux-kontext-lora-v2"


async def test_shadow_is_passed_only_when_local_finish_declares_it() -> None:
    without = recipe(finish_inputs=("image", "preset"))
    run = FakeRun(photo(), {"format": "jpeg"}, recipe=without)
    result = await without.run(run)
    assert "shadow" not in run.steps[-1][2]
    assert run.steps[-1][2]["format"] == "jpeg"
    assert result["shadow"] is False

    run = FakeRun(photo(), {"shadow": False, "marketplace": "ozon"}, recipe=recipe())
    result = await recipe().run(run)
    assert run.steps[-1][2]["shadow"] is False
    assert run.steps[-1][2]["preset"] == "ozon"
    assert result["shadow"] is False
    # Whatever the branch this runs on, the default reads the real catalogue entry.
    assert ProductPhotoRecipe().finish_inputs == declared_inputs("local/finish")
    assert "preset" in declared_inputs("local/finish")


async def test_a_url_is_fetched_as_an_image_and_a_bad_photo_fails_alone() -> None:
    run = FakeRun({"image": {"url": "https://cdn.example/p.jpg"}}, recipe=recipe())
    result = await recipe().run(run)
    assert run.fetched == [("https://cdn.example/p.jpg", True)]
    assert result["original"]["asset_id"] == "fetched-1"
    assert (result["original"]["width"], result["original"]["height"]) == (800, 600)

    with pytest.raises(NotAnImage):
        await recipe().run(
            FakeRun({"image": {"url": "https://cdn.example/p.html"}}, recipe=recipe())
        )

    broken = FakeRun(photo("junk"), recipe=recipe(), blobs={"junk": b"%PDF-1.7 not a photo"})
    with pytest.raises(ItemFailed) as failed:
        await recipe().run(broken)
    assert failed.value.code == "UNSUPPORTED_IMAGE_FORMAT"
    assert failed.value.message.startswith("the photo cannot be used: not an image")
    assert broken.steps == []


async def test_every_background_model_failing_fails_the_photo() -> None:
    run = FakeRun(photo(), recipe=recipe(), failing={m: "broken" for m in REMOTE_CHAIN})
    with pytest.raises(ItemFailed) as failed:
        await recipe().run(run)
    assert "local/grabcut: broken" in failed.value.message
    assert run.stages == ["analyzing", "background"]
