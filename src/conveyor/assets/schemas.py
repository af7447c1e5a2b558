"""What the API returns for assets."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from conveyor.assets.models import Asset


class AssetOut(BaseModel):
    id: str
    mime_type: str
    size: int
    sha256: str
    source_type: str
    parent_asset_id: str | None
    job_id: str | None
    item_id: str | None
    filename: str | None
    created_at: datetime
    content_url: str

    @classmethod
    def from_asset(cls, asset: Asset) -> AssetOut:
        return cls(
            id=asset.id,
            mime_type=asset.mime_type,
            size=asset.size,
            sha256=asset.sha256,
            source_type=asset.source_type,
            parent_asset_id=asset.parent_asset_id,
            job_id=asset.job_id,
            item_id=asset.item_id,
            filename=asset.filename,
            created_at=asset.created_at,
            content_url=f"/v1/assets/{asset.id}/content",
        )
