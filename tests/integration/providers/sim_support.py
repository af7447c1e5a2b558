"""Helpers for running the shipped provider specs against the simulator over real HTTP.

The adapters and the simulator share one ``ManualClock`` whose sleeps move it: when an
adapter sleeps 3 s between polls, simulated tasks progress 3 s, and nothing waits for real
time. ``MemoryAssetIO`` keeps stored files in a dict and sniffs their type by magic bytes,
downloading http(s) results from the simulator's ``/files``.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse

import aiohttp

from conveyor.providers.base import FileInput, ProviderState, StoredFile


def sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


class MemoryAssetIO:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.blobs: dict[str, bytes] = {}
        self.stored: list[StoredFile] = []

    async def read(self, file: FileInput, *, max_bytes: int | None = None) -> bytes:
        return self.blobs[file.asset_id or ""]

    async def url_for(self, file: FileInput) -> str:
        if file.url:
            return file.url
        data = self.blobs[file.asset_id or ""]
        return f"data:{sniff(data)};base64," + base64.b64encode(data).decode()

    async def store(
        self, data: bytes, *, mime_type: str | None = None, filename: str | None = None
    ) -> StoredFile:
        digest = hashlib.sha256(data).hexdigest()
        stored = StoredFile(f"asset-{digest[:12]}", sniff(data), len(data), digest)
        self.blobs[stored.asset_id] = data
        self.stored.append(stored)
        return stored

    async def store_from_url(self, url: str) -> StoredFile:
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            if header.endswith(";base64"):
                return await self.store(base64.b64decode(payload))
            return await self.store(urllib.parse.unquote_to_bytes(payload))
        async with self.session.get(url) as response:
            response.raise_for_status()
            return await self.store(await response.read())


class Checkpoints:
    def __init__(self, *, fail: bool = False) -> None:
        self.states: list[ProviderState] = []
        self.fail = fail

    async def __call__(self, state: ProviderState) -> None:
        self.states.append(state)
        if self.fail:
            # The worker dies right after committing: the step must resume, not resubmit.
            raise ConnectionAbortedError("worker died after the checkpoint")
