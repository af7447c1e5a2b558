"""What the catalogue endpoints take and give, and how a spec arrives over HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.errors import UnsupportedMediaType
from conveyor.providers.spec import ProviderSpecError, read_spec_yaml

YAML_TYPES: Final = frozenset(
    {"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"}
)
JSON_TYPES: Final = frozenset({"application/json"})


class ModelEntry(BaseModel):
    id: str
    kind: str
    provider: str
    title: str
    description: str
    pros: list[str]
    cons: list[str]
    tags: list[str]
    license: str | None = None
    price: Any = None
    spec: dict[str, Any]
    simulated: bool = False
    available: bool
    unavailable_reason: str | None = None
    enable_with: str | None = None


class ProviderEntry(BaseModel):
    name: str
    title: str
    type: str
    docs: str | None
    base_url: str | None
    simulated: bool
    models: list[str]
    available_models: list[str]
    available: bool
    stored: bool = Field(description="Added as data (database), not shipped")
    replaces_shipped: bool = Field(description="A stored spec in place of a shipped one")
    health: dict[str, Any] | None


class ProviderSpecOut(ProviderEntry):
    origin: Literal["stored", "shipped"]
    source: str = Field(description="The spec as YAML (a stored one exactly as it was given)")


class ProviderSaved(ProviderEntry):
    created: bool = Field(description="False when an existing spec was replaced")
    model: str | None = Field(None, description="The model an AIModel row became")


class ProviderRemoved(BaseModel):
    name: str
    removed: bool = True
    restored_shipped: bool = Field(description="The shipped spec of that name is back")


class RecipeEntry(BaseModel):
    name: str
    title: str
    description: str
    stages: list[str]
    item_schema: dict[str, Any]
    options_schema: dict[str, Any]


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description='The model\'s inputs, as in a job item (files: {"url": ...} or '
        '{"asset_id": ...})',
    )


class RenderedRequest(BaseModel):
    model: str
    method: str
    url: str = Field(description="With the query string")
    headers: dict[str, str] = Field(description="Secrets masked as ***")
    query: dict[str, str]
    body: Any
    simulated: bool
    notes: list[str]


class ProviderTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=128, description="Default: the first model")
    inputs: dict[str, Any] | None = Field(None, description="Default: a short prompt")
    wait: float = Field(300.0, gt=0, le=300, description="Seconds to wait for the answer")


class ProviderTestResult(BaseModel):
    provider: str
    model: str
    job_id: str
    status: str
    simulated: bool = Field(description="The answer came from the provider simulator")
    message: str
    output: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class SpecDocument:
    """A request body decoded: the data, and the text when it came as YAML (kept as given)."""

    data: Any
    text: str | None


def decode_spec_body(content_type: str, body: bytes) -> SpecDocument:
    """Decode a spec or AIModel sent as YAML or JSON; refuse other media types."""
    media = content_type.split(";")[0].strip().lower()
    if media not in YAML_TYPES | JSON_TYPES:
        raise UnsupportedMediaType(
            f"send the provider spec as application/yaml (or text/yaml) or application/json, "
            f"not {media or 'no content type'}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProviderSpecError("<upload>", ["spec: the body is not UTF-8 text"]) from None
    if media in YAML_TYPES:
        return SpecDocument(read_spec_yaml(text, source="<upload>"), text)
    try:
        return SpecDocument(json.loads(text), None)
    except ValueError as exc:
        raise ProviderSpecError("<upload>", [f"not valid JSON: {exc}"]) from None
