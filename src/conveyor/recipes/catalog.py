"""The recipes this build ships, configured from the settings."""

from __future__ import annotations

from conveyor.config import Settings
from conveyor.recipes.base import Recipe
from conveyor.recipes.image_finish import ImageFinishRecipe
from conveyor.recipes.product_photo import ProductPhotoRecipe
from conveyor.recipes.single_model import SingleModelRecipe
from conveyor.recipes.vehicle_damage import VehicleDamageRecipe


def default_recipes(settings: Settings) -> list[Recipe]:
    return [
        SingleModelRecipe(),
        ImageFinishRecipe(),
        VehicleDamageRecipe(settings.describe_models, settings.translate_models),
        ProductPhotoRecipe(
            settings.product_analysis_models,
            settings.product_background_model,
            settings.product_background_fallbacks,
        ),
    ]
