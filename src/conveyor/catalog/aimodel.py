"""Seed 003's ``AIModel`` row, turned into a model of a provider spec.

The seed adds a model as ``{provider, name, model_type, api_endpoint, request_schema,
is_active}``. Everything else a call needs (base URL, auth, how to poll, what the statuses
mean, where the result is) comes from the provider the row names: the new model copies the
pattern of that provider's first model of the same kind (or, for a media kind, of any model
whose result is a file) and changes only what the row says:

==================  ==========================================================================
row field           becomes
==================  ==========================================================================
``provider``        the provider spec the model joins (shipped or stored); unknown: refused
``name``            the title; the id is ``provider/slug(name)`` ("Seedance 2" → ``kie/seedance-2``)
``model_type``      the kind, case-insensitive (``IMAGE`` → ``image``, ``VIDEO`` → ``video``)
``api_endpoint``    ``submit.path``: a path under the provider's base URL (or a URL on it)
``request_schema``  ``submit.body``; each placeholder becomes a declared input: ``file`` for a
                    name like ``image``/``image_url``/``*_url``, ``any`` otherwise (and inside a
                    list, where one file or several may be spliced in)
``is_active``       ``active`` (false: listed as switched off, not callable)
==================  ==========================================================================

For Kie that is its createTask/recordInfo pattern: POST to ``api_endpoint``, the task id at
``data.taskId``, polling ``recordInfo`` (2 s, backing off to 5 s, at most 15 min), ``state``
waiting|queuing|generating → success|fail, the file in ``resultJson``'s ``resultUrls``, and
``failMsg``/``failCode`` as the error. What cannot be inferred (an unknown provider, a kind
the provider has no pattern for, an endpoint on another host) is refused with its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.providers.spec import (
    AFTER_SUBMIT_VARIABLES,
    BUILTIN_VARIABLES,
    ModelSpec,
    ProviderSpec,
    ProviderSpecError,
)
from conveyor.providers.template import placeholders

__all__ = ["AIModelRow", "ConvertedModel", "is_ai_model", "parse_ai_model", "spec_model"]

SOURCE: Final = "AIModel"
_KINDS: Final = ("image", "video", "audio", "text", "vision", "translate", "background")
_MEDIA_KINDS: Final = frozenset({"image", "video", "audio", "background"})
# What the new model describes itself: taken from the row, never from the pattern model.
_OWN_FIELDS: Final = (
    "id",
    "title",
    "description",
    "pros",
    "cons",
    "tags",
    "price",
    "defaults",
    "env_defaults",
    "inputs",
    "active",
)
_FILE_NAMES: Final = re.compile(r"^(image|file|video|audio|mask|url|photo)$|(_url|_image|_file)$")


class AIModelRow(BaseModel):
    """The seed's row, as sent to ``POST /v1/providers``."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    model_type: str = Field(min_length=1, max_length=32)
    api_endpoint: str = Field(min_length=1, max_length=2048)
    request_schema: dict[str, Any]
    is_active: bool = True


class ConvertedModel(BaseModel):
    """The spec model a row became, and the model it copied its pattern from."""

    model: dict[str, Any]
    model_id: str
    pattern: str


def is_ai_model(data: Any) -> bool:
    """True for the seed's row shape (it has a ``request_schema`` and no ``models``)."""
    return isinstance(data, Mapping) and "request_schema" in data and "models" not in data


def parse_ai_model(data: Mapping[str, Any]) -> AIModelRow:
    try:
        return AIModelRow.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "AIModel"
            lines.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
        raise ProviderSpecError(SOURCE, lines) from None


def spec_model(row: AIModelRow, provider: ProviderSpec) -> ConvertedModel:
    """The spec model ``row`` describes, on ``provider``'s pattern; every fault at once."""
    faults: list[str] = []
    kind = row.model_type.strip().lower()
    if kind not in _KINDS:
        faults.append(f"model_type: {row.model_type!r} is not one of {', '.join(_KINDS).upper()}")
    slug = re.sub(r"[^a-z0-9.]+", "-", row.name.lower()).strip("-.")
    if not slug:
        faults.append(f"name: {row.name!r} has no letters or digits to make a model id from")
    path = _endpoint_path(row.api_endpoint, provider, faults)
    pattern = _pattern(provider, kind) if kind in _KINDS else None
    if kind in _KINDS and pattern is None:
        have = ", ".join(sorted({m.kind for m in provider.models}))
        faults.append(
            f"model_type: provider {provider.name!r} has no {kind} model whose polling, status "
            f"and result an AIModel could copy (it has: {have}); send a full provider spec"
        )
    if faults or pattern is None or path is None:
        raise ProviderSpecError(SOURCE, faults)
    model = {
        key: value
        for key, value in pattern.model_dump(mode="json", exclude_none=True).items()
        if key not in _OWN_FIELDS
    }
    submit = dict(model["submit"])
    submit.pop("url", None)
    submit["path"] = path
    submit["body"] = row.request_schema
    model["submit"] = submit
    model_id = f"{provider.name}/{slug}"
    model.update(
        id=model_id,
        kind=kind,
        title=row.name,
        description=f"Added as an AIModel; calls {row.api_endpoint} like {pattern.id}.",
        inputs=_inputs({"path": path, "body": row.request_schema}),
        active=row.is_active,
    )
    return ConvertedModel(model=model, model_id=model_id, pattern=pattern.id)


def _endpoint_path(endpoint: str, provider: ProviderSpec, faults: list[str]) -> str | None:
    endpoint = endpoint.strip()
    base = provider.base_url.rstrip("/")
    if endpoint.startswith("/"):
        return endpoint
    if endpoint.startswith(base + "/"):
        return endpoint[len(base) :]
    faults.append(
        f"api_endpoint: {endpoint!r} is not a path ('/api/...') nor a URL under "
        f"{provider.name}'s base URL {base}; the key is never sent anywhere else"
    )
    return None


def _pattern(provider: ProviderSpec, kind: str) -> ModelSpec | None:
    for model in provider.models:
        if model.kind == kind:
            return model
    if kind in _MEDIA_KINDS:
        for model in provider.models:
            if model.result.kind in ("file", "files") and model.kind in _MEDIA_KINDS:
                return model
    return None


def _inputs(template: Any) -> dict[str, dict[str, str]]:
    inputs: dict[str, dict[str, str]] = {}
    spliced = {item.root for item in placeholders(_list_elements(template))}
    for item in placeholders(template):
        name = item.root
        if name in inputs or name in BUILTIN_VARIABLES | AFTER_SUBMIT_VARIABLES:
            continue
        if name in spliced:
            inputs[name] = {"type": "any", "description": "one value or a list (files: URLs)"}
        elif _FILE_NAMES.search(name.lower()):
            inputs[name] = {"type": "file"}
        else:
            inputs[name] = {"type": "any"}
    return inputs


def _list_elements(template: Any) -> list[Any]:
    """Every value that sits directly in a list (where a list value is spliced in)."""
    found: list[Any] = []
    if isinstance(template, Mapping):
        for value in template.values():
            found.extend(_list_elements(value))
    elif isinstance(template, list):
        for value in template:
            if isinstance(value, str):
                found.append(value)
            else:
                found.extend(_list_elements(value))
    return found
