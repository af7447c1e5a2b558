"""``image-finish``: put each image on a clean background at a fixed size (local, offline).

A pure finisher: it places the picture it is given, backdrop and all, and never cuts it out.
A cut-out (a background model's RGBA PNG) comes out as the product alone on white; a photo
keeps its backdrop inside the canvas. The one-step answer for a product photo is the
``product-photo`` recipe (cut-out, then this same finish).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from conveyor.providers.base import FileInput
from conveyor.recipes.base import ItemRun, Recipe, StrictModel, output_json


class FileRef(StrictModel):
    asset_id: str | None = Field(None, max_length=36)
    url: str | None = Field(None, max_length=2048, pattern=r"^https?://")

    @model_validator(mode="after")
    def _exactly_one(self) -> FileRef:
        if (self.asset_id is None) == (self.url is None):
            raise ValueError("give exactly one of asset_id or url")
        return self


class FinishItem(StrictModel):
    image: FileRef
    name: str | None = Field(None, max_length=200)


class FinishOptions(StrictModel):
    preset: Literal["square", "yandex-market", "ozon", "wildberries"] | None = None
    size: int | None = Field(None, ge=16, le=8000)
    background: str = Field("#ffffff", pattern=r"^(#[0-9a-fA-F]{6}|transparent)$")
    format: Literal["png", "jpeg", "webp"] = "png"
    quality: int = Field(90, ge=1, le=100)


class ImageFinishRecipe(Recipe):
    name = "image-finish"
    title = "Image finishing"
    description = (
        "Fits each image, as it is, onto a background at a fixed size or a marketplace preset "
        "and converts it (PNG/JPEG/WebP); offline. It does not remove the photo's own "
        "backdrop: give it a cut-out, or use the `product-photo` recipe to cut the product "
        "out and put it on white in one step."
    )
    item_model = FinishItem
    options_model = FinishOptions
    model_id = "local/finish"

    def item_key(self, item: BaseModel) -> str | None:
        assert isinstance(item, FinishItem)
        return item.name

    def file_inputs(self, item: BaseModel) -> list[str]:
        assert isinstance(item, FinishItem)
        return [item.image.asset_id] if item.image.asset_id else []

    def models(self, options: BaseModel) -> list[str]:
        return [self.model_id]

    async def run(self, run: ItemRun) -> dict[str, Any]:
        item = FinishItem.model_validate(run.input)
        options = FinishOptions.model_validate(run.options)
        image = FileInput(asset_id=item.image.asset_id, url=item.image.url)
        inputs: dict[str, Any] = {
            "image": image,
            "background": options.background,
            "format": options.format,
            "quality": options.quality,
        }
        if options.preset is not None:
            inputs["preset"] = options.preset
        if options.size is not None:
            inputs["size"] = options.size
        output = await run.step("finish", [self.model_id], inputs)
        return output_json(output)
