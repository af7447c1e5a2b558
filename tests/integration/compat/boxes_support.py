"""What the seed-003 tests share: files to upload, API keys, following an asset."""

from __future__ import annotations

import io
import struct
from typing import Any

import httpx
from PIL import Image

from conveyor.clients.service import ClientService
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from tests.integration.providers.callback_stack import Stack, eventually


def png(colour: tuple[int, int, int] = (220, 60, 30), size: tuple[int, int] = (48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def wav(samples: int = 800) -> bytes:
    """A short silent mono WAV file."""
    data = b"\x00\x00" * samples
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


async def api_key(database_url: str, client: str, *, admin: bool = False) -> str:
    db = Database(database_url)
    try:
        key, _ = await ClientService(db, SystemClock()).create_key(
            client, scope="admin" if admin else "client"
        )
    finally:
        await db.dispose()
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def upload(
    stack: Stack, box_id: str, data: bytes, name: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await stack.http.post(
        f"/api/boxes/{box_id}/upload/", files={"file": (name, data)}, headers=headers or {}
    )


async def asset(stack: Stack, asset_id: str, headers: dict[str, str] | None = None) -> Any:
    answer = await stack.http.get(f"/api/assets/{asset_id}/", headers=headers or {})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def settled(
    stack: Stack, asset_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The asset once it is COMPLETED or FAILED."""

    async def check() -> dict[str, Any] | None:
        found: dict[str, Any] = await asset(stack, asset_id, headers)
        return found if found["status"] in ("COMPLETED", "FAILED") else None

    return await eventually(check)


async def download(url: str) -> httpx.Response:
    """GET a file_url as a client would: no API key."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)
