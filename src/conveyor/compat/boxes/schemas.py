"""The seed-003 API's shapes: boxes, generation requests, and assets as the seed shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.compat.boxes.models import BoxRow

Status = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"]
SourceType = Literal["UPLOADED", "GENERATED", "IMG2VID"]
_MAX_CONFIG_KEYS = 100


def _text_only(value: Any) -> Any:
    """Refuse NUL characters anywhere: no database stores them in text (PostgreSQL refuses)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _text_only(key)
            _text_only(item)
    elif isinstance(value, list):
        for item in value:
            _text_only(item)
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class BoxCreate(_Request):
    name: str = Field(min_length=1, max_length=200)

    _clean_name = field_validator("name")(_text_only)


class BoxUpdate(_Request):
    name: str = Field(min_length=1, max_length=200)

    _clean_name = field_validator("name")(_text_only)


class GenerateRequest(_Request):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "model": "kie/seedance-1.5-pro",
                    "prompt": "Two people arm wrestling in a vintage room, cinematic",
                    "parent_asset": "8b0e3c8e-…",
                    "config": {"duration": "8", "resolution": "720p"},
                }
            ]
        },
    )

    model: str = Field(min_length=1, max_length=128, description="A model id from /v1/models")
    prompt: str = Field(min_length=1, max_length=20_000)
    parent_asset: str | None = Field(
        None, min_length=1, max_length=64, description="An image asset to start from (img2vid)"
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="The model's other inputs (aspect_ratio, duration, …)"
    )

    _clean_text = field_validator("model", "prompt", "parent_asset")(_text_only)

    @field_validator("config")
    @classmethod
    def _few_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > _MAX_CONFIG_KEYS:
            raise ValueError(f"config may have at most {_MAX_CONFIG_KEYS} keys")
        return _text_only(value)  # type: ignore[no-any-return]


class BoxOut(BaseModel):
    id: str
    name: str
    asset_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, box: BoxRow, asset_count: int) -> BoxOut:
        return cls(
            id=box.id,
            name=box.name,
            asset_count=asset_count,
            created_at=box.created_at,
            updated_at=box.updated_at,
        )


class AssetOut(BaseModel):
    """An asset as seed 003 shows it (plus ``config`` and ``job_id``, the durable job
    underneath a generation)."""

    id: str
    box: str
    status: Status
    source_type: SourceType
    parent_asset: str | None
    external_task_id: str | None
    error_message: str | None
    file_url: str | None = Field(
        description="Where to download the file: a presigned or public storage URL, or a "
        "signed link to this server; valid for an hour (read the asset again for a new one)"
    )
    mime_type: str | None
    size: int | None
    model: str | None
    prompt: str | None
    config: dict[str, Any] | None
    job_id: str | None
    created_at: datetime
    updated_at: datetime
