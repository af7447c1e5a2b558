"""``model``: call one catalogue model per item (with optional fallbacks); inputs as given."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel

from conveyor.recipes.base import ItemRun, Recipe, StrictModel, asset_file, output_json


class ModelItem(RootModel[dict[str, Any]]):
    """The model's inputs; ``{"asset_id": ...}`` / ``{"url": ...}`` values are files."""


class ModelOptions(StrictModel):
    model: str = Field(..., min_length=1, max_length=128)
    fallbacks: list[str] = Field(default_factory=list, max_length=10)


class SingleModelRecipe(Recipe):
    name = "model"
    title = "Single model"
    description = "Calls the job's model once per item, falling back down `fallbacks`."
    item_model = ModelItem
    options_model = ModelOptions

    def file_inputs(self, item: BaseModel) -> list[str]:
        assert isinstance(item, ModelItem)
        ids = []
        for value in item.root.values():
            for one in value if isinstance(value, list) else [value]:
                file = asset_file(one)
                if file is not None and file.asset_id:
                    ids.append(file.asset_id)
        return ids

    def models(self, options: BaseModel) -> list[str]:
        assert isinstance(options, ModelOptions)
        return [options.model, *options.fallbacks]

    async def run(self, run: ItemRun) -> dict[str, Any]:
        options = ModelOptions.model_validate(run.options)
        inputs = {name: _files_in(value) for name, value in run.input.items()}
        output = await run.step("generate", [options.model, *options.fallbacks], inputs)
        return output_json(output)


def _files_in(value: Any) -> Any:
    """An input with its files (alone, or in a list such as vision's ``images``) as
    ``FileInput``s, which the model turns into what it reads or a URL it sends."""
    if isinstance(value, list):
        return [asset_file(one) or one for one in value]
    return asset_file(value) or value
