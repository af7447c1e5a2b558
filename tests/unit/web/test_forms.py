"""Forms built from what recipes and models declare, and read back into job JSON."""

from __future__ import annotations

import pytest

from conveyor.errors import ValidationFailed
from conveyor.recipes.image_finish import ImageFinishRecipe
from conveyor.web.forms import fields_from_inputs, fields_from_schema, read_values


def test_image_finish_becomes_a_file_a_text_and_its_options() -> None:
    recipe = ImageFinishRecipe()
    item = {f.name: f for f in fields_from_schema(recipe.item_model.model_json_schema())}
    options = {f.name: f for f in fields_from_schema(recipe.options_model.model_json_schema())}
    assert item["image"].kind == "file"
    assert item["image"].required
    assert item["name"].kind == "text"
    assert not item["name"].required
    assert options["preset"].kind == "select"
    assert options["preset"].choices == ("square", "yandex-market", "ozon", "wildberries")
    assert options["format"].default == "png"
    assert (options["quality"].kind, options["quality"].minimum, options["quality"].maximum) == (
        "integer",
        1,
        100,
    )
    assert options["size"].kind == "integer"
    assert not options["size"].required


def test_model_inputs_become_fields() -> None:
    fields = fields_from_inputs(
        [
            {"name": "image", "type": "file", "required": True},
            {"name": "preset", "type": "choice", "choices": ["a", "b"], "default": "a"},
            {"name": "text", "type": "string", "max_length": 5000},
            {"name": "speed", "type": "number", "minimum": 0.5},
            {"name": "loud", "type": "boolean", "default": True},
            {"name": "loras", "type": "array"},
            {"name": "format", "type": "string", "enum": ["mp3", "wav"]},
        ]
    )
    kinds = {f.name: f.kind for f in fields}
    assert kinds == {
        "image": "file",
        "preset": "select",
        "text": "textarea",
        "speed": "number",
        "loud": "checkbox",
        "loras": "json",
        "format": "select",
    }


def test_values_are_read_as_json_and_empty_ones_left_out() -> None:
    recipe = ImageFinishRecipe()
    fields = fields_from_schema(recipe.options_model.model_json_schema())
    values = read_values(
        fields,
        {"option.size": ["512"], "option.preset": [""], "option.background": ["#000000"]},
        "option.",
    )
    assert values == {"size": 512, "background": "#000000"}


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [("integer", "1.5", "whole number"), ("number", "many", "not a number"), ("json", "{", "JSON")],
)
def test_a_value_that_cannot_be_read_names_its_field(kind: str, raw: str, message: str) -> None:
    fields = fields_from_inputs([{"name": "x", "type": kind if kind != "json" else "object"}])
    with pytest.raises(ValidationFailed, match=f"X: .*{message}"):
        read_values(fields, {"item.x": [raw]}, "item.")
