"""The recipes this build ships, configured from the settings."""

from __future__ import annotations

from conveyor.config import Settings
from conveyor.recipes.base import Recipe, RecipeRegistry
from conveyor.recipes.image_finish import ImageFinishRecipe
from conveyor.recipes.product_photo import ProductPhotoRecipe
from conveyor.recipes.single_model import SingleModelRecipe
from conveyor.recipes.vehicle_damage import VehicleDamageRecipe
from conveyor.recipes.word_media import WordMediaRecipe


def default_recipes(settings: Settings) -> list[Recipe]:
    return [
        SingleModelRecipe(),
        ImageFinishRecipe(),
        VehicleDamageRecipe(
            settings.describe_models,
            settings.translate_models,
            max_image_pixels=settings.engine_max_image_pixels,
        ),
        ProductPhotoRecipe(
            settings.product_analysis_models,
            settings.product_background_model,
            settings.product_background_fallbacks,
            max_image_pixels=settings.engine_max_image_pixels,
        ),
        WordMediaRecipe(
            settings.media_image_models, settings.media_audio_models, settings.media_image_prompt
        ),
    ]


def word_media_recipe(recipes: RecipeRegistry) -> WordMediaRecipe:
    """The ``word-media`` recipe of a registry (the seed-002 API checks words with it)."""
    recipe = recipes.get(WordMediaRecipe.name)
    assert isinstance(recipe, WordMediaRecipe)
    return recipe
