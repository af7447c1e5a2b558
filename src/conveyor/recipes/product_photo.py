"""``product-photo``: a product photo in, the product alone on white at a marketplace size out.

One item is one photo (``{"image": {"asset_id"} | {"url"}, "filename"}``). It goes through
seed 004's three stages, each said out loud with ``run.set_stage`` as it starts:

1. **analyzing** (unless ``analysis`` is off): one step down the analysis chain (settings
   ``product_analysis_models``: a vision chat model, then ``local/analyze``) producing the
   seed's JSON (``product_analysis``). The analysis helps but is not needed: if every model
   fails, the photo goes on without it and the result says why.
2. **background**: one step down the background chain. Its head is the model the job names
   (``model``, a catalogue id or the seed's id such as ``flux-kontext-lora-v2``, or
   ``lora_version`` v1/v2; else ``product_background_model``); after it come the fallbacks
   (``product_background_fallbacks``) that follow it. The engine tries them in order, skips
   those without a key, and records in the item's provenance which model made the cut-out
   and why each one before it did not. FLUX Kontext LoRA is prompted with
   ``custom_prompt_text``, else the analysis's ``recommended_prompt``, else a fixed prompt.
   With no provider key at all, ``local/u2netp`` (then ``local/grabcut``) does the work.
3. **final**: with ``enhance``, ``local/enhance`` first corrects the cut-out (levels measured
   on the product alone, gentle sharpening); then ``local/finish`` places it on white at the
   marketplace's size, in sRGB, flattened (PNG with no alpha, or JPEG): every marketplace
   here accepts both and none wants transparency. ``shadow`` (default on) asks for a soft
   shadow so light products stay visible on white; it is passed only when the installed
   ``local/finish`` declares that input, and the result says whether it was applied.

With ``time_limit`` the engine stops a photo that has worked longer than that many seconds
(waits for a free engine or provider slot not counted) and fails it with ``TIMEOUT``; seed
004's API sets 120. The job records the chains it was created with, so a later change of
the settings does not change what a queued photo calls. The original, the cut-out and the
final are all kept as assets of the item; the result names each with its MIME type.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from conveyor.content.images import (
    DEFAULT_MAX_PIXELS,
    PIXEL_LIMIT_SETTING,
    ImageRejected,
    check_image,
)
from conveyor.errors import TemporaryFailure
from conveyor.providers.base import FileInput, ModelOutput, StoredFile
from conveyor.providers.local.catalogue import local_models
from conveyor.recipes.base import ItemFailed, ItemRun, Recipe, StrictModel
from conveyor.recipes.image_finish import FileRef
from conveyor.recipes.product_analysis import analysis_inputs, read_analysis

Marketplace = Literal["yandex-market", "ozon", "wildberries"]
MARKETPLACES: tuple[str, ...] = ("yandex-market", "ozon", "wildberries")
# The seed lists it first, and a 1000×1000 square is shown whole by any storefront.
DEFAULT_MARKETPLACE: Marketplace = "yandex-market"
DEFAULT_ANALYSIS_MODELS = ("openai/vision", "local/analyze")
DEFAULT_BACKGROUND_MODEL = "fal/flux-kontext-lora-v2"
DEFAULT_BACKGROUND_FALLBACKS = (
    "fal/birefnet",
    "replicate/remove-background",
    "local/u2netp",
    "local/grabcut",
)
FINISH_MODEL = "local/finish"
ENHANCE_MODEL = "local/enhance"
# Seed 004's model ids (``modelId`` and ``GET /models``) and the catalogue's ids they mean.
SEED_MODEL_IDS: dict[str, str] = {
    "flux-kontext-lora-v2": "fal/flux-kontext-lora-v2",
    "flux-kontext-lora-v1": "fal/flux-kontext-lora-v1",
    "birefnet": "fal/birefnet",
    "remove-background": "replicate/remove-background",
    "u2netp": "local/u2netp",
    "grabcut": "local/grabcut",
}
LORA_VERSIONS: dict[str, str] = {
    "v1": "fal/flux-kontext-lora-v1",
    "v2": "fal/flux-kontext-lora-v2",
}
# "Автовыбор" in the seed: the configured default.
AUTO_MODEL = "auto"
DEFAULT_PROMPT = (
    "Remove the background: show this exact product, unchanged, alone and centred on a pure "
    "white background, with soft even studio lighting and sharp focus"
)
FINAL_QUALITY = 92
MAX_PROMPT = 2000


class PhotoItem(StrictModel):
    image: FileRef
    filename: str | None = Field(None, min_length=1, max_length=200)


class ProductPhotoOptions(StrictModel):
    model: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Background model: a catalogue id (fal/birefnet) or the seed's id "
        "(flux-kontext-lora-v2, birefnet, u2netp…); 'auto' or none: the configured default",
    )
    lora_version: Literal["v1", "v2"] | None = Field(
        None, description="Seed 004's batch field: FLUX Kontext LoRA v1 or v2 (if no model)"
    )
    custom_prompt_text: str | None = Field(
        None, max_length=MAX_PROMPT, description="Prompt for FLUX Kontext LoRA"
    )
    marketplace: Marketplace = Field(DEFAULT_MARKETPLACE, description="Size of the final")
    format: Literal["png", "jpeg"] = Field("png", description="Final format; never with alpha")
    enhance: bool = Field(False, description="Levels and sharpening on the cut-out")
    shadow: bool = Field(True, description="Soft shadow under the product on white")
    analysis: bool = Field(True, description="Analyse the product first")
    time_limit: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="Seconds of work per photo (waits for a free engine or provider slot "
        "not counted); past it the photo fails with TIMEOUT. Seed 004's API sets 120",
    )
    analysis_models: list[str] | None = Field(
        None, min_length=1, max_length=10, description="Analysis chain (default: settings)"
    )
    background_models: list[str] | None = Field(
        None,
        min_length=1,
        max_length=10,
        description="The whole background chain, instead of model + the configured fallbacks",
    )

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> ProductPhotoOptions:
        # A recorded job has model == background_models[0], which is consistent.
        chain = self.background_models
        if chain is not None and (
            self.lora_version or (self.model and catalogue_model_id(self.model) != chain[0])
        ):
            raise ValueError("give model/lora_version or background_models, not both")
        return self


def catalogue_model_id(model: str) -> str:
    """A catalogue id for a seed id (``birefnet`` → ``fal/birefnet``); others unchanged."""
    return SEED_MODEL_IDS.get(model.strip().lower(), model.strip())


def background_chain(
    model: str | None,
    lora_version: str | None,
    *,
    default: str = DEFAULT_BACKGROUND_MODEL,
    fallbacks: Sequence[str] = DEFAULT_BACKGROUND_FALLBACKS,
) -> list[str]:
    """The models to try, in order: the chosen one, then the fallbacks that follow it."""
    if model and model.strip().lower() != AUTO_MODEL:
        chosen = catalogue_model_id(model)
    elif lora_version:
        chosen = LORA_VERSIONS[lora_version]
    else:
        chosen = default
    rest = list(fallbacks)
    if chosen in rest:
        # Choosing a fallback means starting the chain there: asking for u2netp never
        # ends up at a paid remote model.
        rest = rest[rest.index(chosen) + 1 :]
    return [chosen, *rest]


def background_prompt(custom: str | None, analysis: dict[str, Any] | None) -> tuple[str, str]:
    """The FLUX prompt and where it came from: ``custom``, ``analysis`` or ``default``."""
    if custom and custom.strip():
        return custom.strip(), "custom"
    recommended = (analysis or {}).get("recommended_prompt")
    if isinstance(recommended, str) and recommended.strip():
        return recommended.strip()[:MAX_PROMPT], "analysis"
    return DEFAULT_PROMPT, "default"


def declared_inputs(model_id: str) -> frozenset[str]:
    """The input names a local model declares in its catalogue entry (empty if unknown)."""
    for spec in local_models():
        if spec.id == model_id:
            return frozenset(field.name for field in spec.inputs)
    return frozenset()


class ProductPhotoRecipe(Recipe):
    name = "product-photo"
    title = "Product photo for marketplaces"
    description = (
        "Cuts the product out of a photo and puts it on white at a marketplace size "
        "(yandex-market 1000×1000 by default, ozon 1200×1600, wildberries 900×1200), "
        "flattened PNG or JPEG in sRGB. Analyses the product first (vision model, offline "
        "fallback); the background model (FLUX Kontext LoRA v2 by default) falls back to "
        "BiRefNet, Replicate, then the offline U²-Net-p and GrabCut. Item: `image` as "
        "`{asset_id}` or `{url}`, optional `filename`."
    )
    stages = ("analyzing", "background", "final")
    item_model = PhotoItem
    options_model = ProductPhotoOptions

    def __init__(
        self,
        analysis_models: Sequence[str] = DEFAULT_ANALYSIS_MODELS,
        background_model: str = DEFAULT_BACKGROUND_MODEL,
        background_fallbacks: Sequence[str] = DEFAULT_BACKGROUND_FALLBACKS,
        *,
        finish_inputs: Collection[str] | None = None,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        # The engines refuse larger images anyway: refuse them before any paid call.
        self.max_image_pixels = max_image_pixels
        self.analysis_models = list(analysis_models)
        self.background_model = background_model
        self.background_fallbacks = list(background_fallbacks)
        self.finish_inputs = frozenset(
            declared_inputs(FINISH_MODEL) if finish_inputs is None else finish_inputs
        )

    def parse_options(self, options: dict[str, Any]) -> BaseModel:
        # The job records its chains, resolved now: later settings changes don't touch it.
        parsed = super().parse_options(options)
        assert isinstance(parsed, ProductPhotoOptions)
        chain = parsed.background_models or background_chain(
            parsed.model,
            parsed.lora_version,
            default=self.background_model,
            fallbacks=self.background_fallbacks,
        )
        return parsed.model_copy(
            update={
                "model": chain[0],
                "lora_version": None,
                "analysis_models": parsed.analysis_models or self.analysis_models,
                "background_models": chain,
            }
        )

    def time_limit(self, options: dict[str, Any]) -> float | None:
        return ProductPhotoOptions.model_validate(options).time_limit

    def item_key(self, item: BaseModel) -> str | None:
        assert isinstance(item, PhotoItem)
        return item.filename

    def file_inputs(self, item: BaseModel) -> list[str]:
        assert isinstance(item, PhotoItem)
        return [item.image.asset_id] if item.image.asset_id else []

    def models(self, options: BaseModel) -> list[str]:
        assert isinstance(options, ProductPhotoOptions)
        chain = list(options.analysis_models or self.analysis_models) if options.analysis else []
        chain += options.background_models or [self.background_model]
        chain.append(FINISH_MODEL)
        if options.enhance:
            chain.append(ENHANCE_MODEL)
        return list(dict.fromkeys(chain))

    async def run(self, run: ItemRun) -> dict[str, Any]:
        item = PhotoItem.model_validate(run.input)
        options = ProductPhotoOptions.model_validate(run.options)
        original = await _original(run, item, self.max_image_pixels)
        photo = FileInput(asset_id=original["asset_id"], mime_type=original["mime_type"])

        analysis: dict[str, Any] | None = None
        analysis_model: str | None = None
        if options.analysis:
            await run.set_stage("analyzing")
            analysis, analysis_model = await self._analyse(run, photo, options)

        await run.set_stage("background")
        prompt, prompt_source = background_prompt(options.custom_prompt_text, analysis)
        chain = options.background_models or [self.background_model]
        made = await run.step("background", chain, {"image": photo, "prompt": prompt})
        cutout = _image_of(made, "background")

        await run.set_stage("final")
        placed = cutout
        enhanced: ModelOutput | None = None
        if options.enhance:
            enhanced = await run.step("enhance", [ENHANCE_MODEL], {"image": _input(cutout)})
            placed = _image_of(enhanced, "enhance")
        finish = {
            "image": _input(placed),
            "preset": options.marketplace,
            "background": "white",
            "format": options.format,
            "quality": FINAL_QUALITY,
        }
        shadow = options.shadow and "shadow" in self.finish_inputs
        if "shadow" in self.finish_inputs:
            finish["shadow"] = options.shadow
        finished = await run.step("final", [FINISH_MODEL], finish)
        final = _image_of(finished, "final")
        return {
            "filename": item.filename,
            "marketplace": options.marketplace,
            "analysis": analysis,
            "analysis_model": analysis_model,
            "original": original,
            "background": _file_json(cutout),
            "background_model": made.model_id,
            "prompt": prompt,
            "prompt_source": prompt_source,
            "enhanced": _file_json(placed) if enhanced is not None else None,
            "enhance": enhanced.data if enhanced is not None else None,
            "final": {**_file_json(final), **_size_of(finished)},
            "final_model": finished.model_id,
            "shadow": shadow,
        }

    async def _analyse(
        self, run: ItemRun, photo: FileInput, options: ProductPhotoOptions
    ) -> tuple[dict[str, Any] | None, str | None]:
        chain = options.analysis_models or self.analysis_models
        try:
            output = await run.step("analysis", chain, analysis_inputs(photo))
        except (ItemFailed, TemporaryFailure) as exc:
            # The photo does not need its analysis: go on now rather than fail or wait.
            run.warn(f"product analysis failed ({exc}); the photo was processed without it")
            return None, None
        analysis = read_analysis(output)
        if analysis is None:
            run.warn(
                f"product analysis by {output.model_id} was not JSON; "
                "the photo was processed without it"
            )
        return analysis, output.model_id


async def _original(run: ItemRun, item: PhotoItem, max_pixels: int) -> dict[str, Any]:
    """The photo as stored (a URL is fetched first), checked to be a usable image."""
    if item.image.url is not None:
        stored = await run.fetch_input(item.image.url, images_only=True)
        asset_id = stored.asset_id
    else:
        assert item.image.asset_id is not None
        asset_id = item.image.asset_id
    data = await run.files.read(FileInput(asset_id=asset_id))
    try:
        info = await asyncio.to_thread(
            check_image, data, max_pixels, limit_setting=PIXEL_LIMIT_SETTING
        )
    except ImageRejected as exc:
        raise ItemFailed(f"the photo cannot be used: {exc.message}", code=exc.code) from exc
    for note in info.warnings:
        run.warn(f"{note}; the cut-out may be poor")
    return {
        "asset_id": asset_id,
        "mime_type": info.mime,
        "size": len(data),
        "width": info.width,
        "height": info.height,
    }


def _image_of(output: ModelOutput, step: str) -> StoredFile:
    if not output.files:
        raise ItemFailed(
            f"{output.model_id} finished the {step} step without an image", code="NO_IMAGE"
        )
    return output.files[0]


def _input(file: StoredFile) -> FileInput:
    return FileInput(asset_id=file.asset_id, mime_type=file.mime_type)


def _file_json(file: StoredFile) -> dict[str, Any]:
    return {"asset_id": file.asset_id, "mime_type": file.mime_type, "size": file.size}


def _size_of(output: ModelOutput) -> dict[str, Any]:
    data = output.data if isinstance(output.data, dict) else {}
    return {key: data[key] for key in ("width", "height") if key in data}
