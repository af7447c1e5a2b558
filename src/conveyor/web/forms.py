"""Forms for any recipe or model, built from what each declares, and read back into JSON.

A recipe declares its item and options as JSON schemas (``GET /v1/recipes``); a model
declares its inputs (``spec.inputs`` of ``GET /v1/models``). Both become the same list of
``FormField``s: a file picker for a file reference (``{"asset_id"} | {"url"}``), a select
for a choice, a number, a checkbox, a text field, a list (one value per line), or a JSON
text area for anything a flat form cannot say. Submitted values are read back with
``read_values``: empty fields are left out (the recipe's defaults apply), numbers and JSON
are parsed, and a value that cannot be read is refused naming its field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from conveyor.errors import ValidationFailed

FieldKind = Literal[
    "file", "files", "text", "textarea", "integer", "number", "checkbox", "select", "list", "json"
]
_LONG_TEXT = 300
_TEXTAREA_NAMES = frozenset({"text", "prompt", "system_prompt", "description", "custom_prompt"})


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    kind: FieldKind
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    description: str = ""

    @property
    def default_text(self) -> str:
        if self.default is None or self.kind == "checkbox":
            return ""
        if self.kind == "list" and isinstance(self.default, list):
            return "\n".join(str(v) for v in self.default)
        if self.kind == "json":
            return json.dumps(self.default)
        return str(self.default)

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"


@dataclass(frozen=True, slots=True)
class RunForm:
    """The form for one recipe (``recipe:NAME``) or one model (``model:ID``)."""

    target: str
    title: str
    description: str
    item_fields: list[FormField]
    option_fields: list[FormField]
    available: bool = True
    unavailable_reason: str | None = None

    @property
    def file_fields(self) -> list[FormField]:
        return [f for f in self.item_fields if f.kind in ("file", "files")]


def _label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _is_file_ref(node: dict[str, Any]) -> bool:
    properties = node.get("properties")
    return isinstance(properties, dict) and {"asset_id", "url"} <= set(properties)


def _schema_field(
    schema: dict[str, Any], name: str, node: dict[str, Any], required: bool
) -> FormField:
    node = _resolve(schema, node)
    options = node.get("anyOf")
    if isinstance(options, list):
        concrete = [_resolve(schema, o) for o in options if o.get("type") != "null"]
        if len(concrete) == 1:
            node = {**concrete[0], **{k: v for k, v in node.items() if k != "anyOf"}}
    # The property's name, not its type's title (a file reference is titled "FileRef").
    label = _label(name)
    common: dict[str, Any] = {
        "name": name,
        "label": label,
        "required": required,
        "default": node.get("default"),
        "description": str(node.get("description") or ""),
    }
    kind = node.get("type")
    if _is_file_ref(node):
        return FormField(kind="file", **common)
    if isinstance(node.get("enum"), list):
        return FormField(kind="select", choices=tuple(str(c) for c in node["enum"]), **common)
    if kind == "boolean":
        return FormField(kind="checkbox", **common)
    if kind in ("integer", "number"):
        return FormField(
            kind="integer" if kind == "integer" else "number",
            minimum=node.get("minimum"),
            maximum=node.get("maximum"),
            **common,
        )
    if kind == "string":
        max_length = node.get("maxLength")
        long = name in _TEXTAREA_NAMES or (isinstance(max_length, int) and max_length > _LONG_TEXT)
        return FormField(kind="textarea" if long else "text", max_length=max_length, **common)
    if kind == "array" and _resolve(schema, node.get("items") or {}).get("type") == "string":
        return FormField(kind="list", **common)
    return FormField(kind="json", **common)


def fields_from_schema(schema: dict[str, Any]) -> list[FormField]:
    """Fields for the properties of a pydantic JSON schema, in declaration order."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    required = set(schema.get("required") or [])
    return [
        _schema_field(schema, name, node, name in required)
        for name, node in properties.items()
        if isinstance(node, dict)
    ]


def fields_from_inputs(inputs: list[dict[str, Any]]) -> list[FormField]:
    """Fields for a model's declared inputs (``spec.inputs``)."""
    fields = []
    for spec in inputs:
        name = str(spec.get("name") or "")
        if not name:
            continue
        choices = spec.get("choices") or spec.get("enum")
        common: dict[str, Any] = {
            "name": name,
            "label": _label(name),
            "required": bool(spec.get("required", False)),
            "default": spec.get("default"),
            "description": str(spec.get("description") or ""),
        }
        kind = spec.get("type")
        max_length = spec.get("max_length")
        if kind in ("file", "files"):
            fields.append(FormField(kind=kind, **common))
        elif isinstance(choices, list) and choices:
            fields.append(
                FormField(kind="select", choices=tuple(str(c) for c in choices), **common)
            )
        elif kind == "boolean":
            fields.append(FormField(kind="checkbox", **common))
        elif kind in ("integer", "number"):
            fields.append(
                FormField(
                    kind=kind,
                    minimum=spec.get("minimum"),
                    maximum=spec.get("maximum"),
                    **common,
                )
            )
        elif kind == "string":
            long = name in _TEXTAREA_NAMES or (
                isinstance(max_length, int) and max_length > _LONG_TEXT
            )
            fields.append(
                FormField(kind="textarea" if long else "text", max_length=max_length, **common)
            )
        else:
            fields.append(FormField(kind="json", **common))
    return fields


def recipe_form(recipe: dict[str, Any]) -> RunForm:
    """The form of one entry of ``CatalogService.recipes()``."""
    return RunForm(
        target=f"recipe:{recipe['name']}",
        title=str(recipe["title"]),
        description=str(recipe["description"]),
        item_fields=fields_from_schema(recipe["item_schema"]),
        option_fields=fields_from_schema(recipe["options_schema"]),
    )


def model_form(model: dict[str, Any]) -> RunForm:
    """The form of one entry of ``CatalogService.models()`` (run by the ``model`` recipe)."""
    inputs = (model.get("spec") or {}).get("inputs") or []
    return RunForm(
        target=f"model:{model['id']}",
        title=str(model.get("title") or model["id"]),
        description=str(model.get("description") or ""),
        item_fields=fields_from_inputs(inputs),
        option_fields=[],
        available=bool(model.get("available", True)),
        unavailable_reason=model.get("unavailable_reason"),
    )


def _read(field: FormField, raw: str) -> Any:
    text = raw.strip()
    if field.kind in ("integer", "number"):
        try:
            number = float(text)
        except ValueError:
            raise ValueError("is not a number") from None
        if field.kind == "integer":
            if not number.is_integer():
                raise ValueError("must be a whole number")
            return int(number)
        return number
    if field.kind == "list":
        return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    if field.kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("is not valid JSON") from None
    return raw if field.kind == "textarea" else text


def read_values(fields: list[FormField], form: dict[str, list[str]], prefix: str) -> dict[str, Any]:
    """The JSON values of the non-file fields; ``form`` maps input names to their values."""
    values: dict[str, Any] = {}
    for field in fields:
        if field.kind in ("file", "files"):
            continue
        submitted = form.get(prefix + field.name, [])
        if field.kind == "checkbox":
            values[field.name] = bool(submitted)
            continue
        raw = submitted[0] if submitted else ""
        if not raw.strip():
            continue
        try:
            values[field.name] = _read(field, raw)
        except ValueError as exc:
            raise ValidationFailed(f"{field.label}: {exc}", code="FORM_INVALID") from exc
    return values
