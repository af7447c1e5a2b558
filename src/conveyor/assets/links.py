"""Time-limited links to an asset's bytes, for remote providers that must fetch an input.

``/v1/assets/{id}/signed?expires=<unix>&sig=<hex>`` needs no API key: the HMAC of
``"{id}:{expires}"`` with the server's secret is the credential, valid until ``expires``.
Used only when ``CONVEYOR_PUBLIC_URL`` says how providers reach this server; otherwise
inputs go to providers inline as ``data:`` URLs (or as presigned S3 URLs).
"""

from __future__ import annotations

import hashlib
import hmac

from conveyor.core.clock import Clock


class AssetLinks:
    def __init__(self, secret: str, public_url: str, clock: Clock, *, ttl: int = 3600) -> None:
        self._secret = secret.encode()
        self.public_url = public_url.rstrip("/")
        self._clock = clock
        self.ttl = ttl

    def _signature(self, asset_id: str, expires: int) -> str:
        message = f"{asset_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, asset_id: str) -> str:
        expires = int(self._clock.timestamp()) + self.ttl
        signature = self._signature(asset_id, expires)
        return f"{self.public_url}/v1/assets/{asset_id}/signed?expires={expires}&sig={signature}"

    def valid(self, asset_id: str, expires: int, signature: str) -> bool:
        if expires < self._clock.timestamp():
            return False
        # As bytes: compare_digest refuses str with non-ASCII characters, which anyone can send.
        expected = self._signature(asset_id, expires).encode()
        return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
