"""``file_url``: where a client downloads an asset's file, without an API key.

First match wins:

1. the bucket is public (``CONVEYOR_S3_PUBLIC_URL``): that base URL plus the object key —
   permanent, cacheable, what the seed's public TimeWeb bucket gave;
2. the storage presigns (S3): a presigned GET URL, valid for ``ttl`` seconds;
3. otherwise (local or memory storage) a signed link to this server,
   ``/v1/assets/{id}/signed?expires=…&sig=…`` (``conveyor.assets.links.AssetLinks``), valid
   for ``ttl`` seconds: under ``CONVEYOR_PUBLIC_URL`` when it is set, else under the base URL
   the request came to (behind a proxy, set ``CONVEYOR_PUBLIC_URL``).

A URL that expires is made afresh each time the asset is read.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from conveyor.assets.links import AssetLinks
from conveyor.assets.models import Asset
from conveyor.storage import StorageBackend

__all__ = ["FileLinks"]


class FileLinks:
    def __init__(
        self,
        storage: StorageBackend,
        signer: AssetLinks,
        *,
        public_base: str = "",
        object_key: Callable[[str], str] | None = None,
        ttl: int = 3600,
    ) -> None:
        if public_base and object_key is None:
            raise ValueError("a public bucket URL needs the storage's object keys")
        self.storage = storage
        self.signer = signer
        self.public_base = public_base.rstrip("/")
        self._object_key = object_key
        self.ttl = ttl

    async def url_for(self, asset: Asset, *, request_base: str) -> str:
        """A URL the client can GET the asset's bytes from."""
        if self.public_base and self._object_key is not None:
            return f"{self.public_base}/{quote(self._object_key(asset.storage_key))}"
        presigned = await self.storage.presigned_url(asset.storage_key, expires=self.ttl)
        if presigned is not None:
            return presigned
        link = self.signer.url(asset.id)
        if link.startswith(("http://", "https://")):
            return link
        return request_base.rstrip("/") + link
