"""Everything a seed-004 test talks to, on real sockets: Conveyor (workers embedded), the
provider simulator when asked for, and drawn product photos.

Offline (``simulate=False``, no provider key) the local models carry the whole pipeline:
``local/analyze``, ``local/u2netp``, ``local/finish``. With ``simulate=True`` the simulator
stands in for OpenAI and fal as ``serve --simulate`` does (FLUX Kontext LoRA, BiRefNet).
With a ``ManualClock`` the engine and the simulator wait on the same clock.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from conveyor.app import create_app
from conveyor.assets.models import assets
from conveyor.core.clock import ManualClock
from conveyor.jobs.models import jobs
from conveyor.sim import RunningSimulator, SimConfig, start_simulator
from tests.integration.conftest import fast_settings
from tests.support.server import serving

RED, TEAL, WHITE = (200, 30, 30), (0, 128, 128), (255, 255, 255)
REMOTE_BACKGROUND = ["fal/flux-kontext-lora-v2", "fal/birefnet", "replicate/remove-background"]


def mug_photo(size: tuple[int, int] = (640, 480), fmt: str = "JPEG") -> bytes:
    """A red mug (body and handle) on a teal backdrop."""
    width, height = size
    image = Image.new("RGB", size, TEAL)
    draw = ImageDraw.Draw(image)
    sx, sy = width / 640, height / 480
    draw.rounded_rectangle((230 * sx, 120 * sy, 410 * sx, 380 * sy), radius=20, fill=RED)
    draw.ellipse((395 * sx, 180 * sy, 480 * sx, 300 * sy), outline=RED, width=int(22 * sx))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def png_of(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def assert_product_on_white(final: Image.Image, size: tuple[int, int]) -> None:
    assert final.mode == "RGB"  # flattened: no alpha for any marketplace
    assert final.size == size
    pixels = np.asarray(final).astype(int)
    assert (pixels[5, 5] >= 250).all()  # white canvas
    middle = pixels[size[1] // 2, size[0] // 2 - size[0] // 10]
    assert np.abs(middle - RED).max() < 40  # the mug, not the teal backdrop
    assert np.all(np.abs(pixels - TEAL) < 40, axis=2).mean() < 0.002


def assert_cutout(image: Image.Image) -> None:
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert alpha[5, 5] == 0
    assert alpha[alpha.shape[0] // 2, alpha.shape[1] // 2] == 255


@dataclass
class PhotoStack:
    base_url: str
    http: httpx.AsyncClient
    app: FastAPI
    sim: RunningSimulator | None
    clock: ManualClock | None

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def counts(self) -> tuple[int, int]:
        """Jobs and asset rows in the database."""
        async with self.runtime.db.read() as conn:
            job_count = await conn.scalar(select(func.count()).select_from(jobs))
            asset_count = await conn.scalar(select(func.count()).select_from(assets))
        return int(job_count or 0), int(asset_count or 0)

    async def wait_for(
        self, processing_id: str, *, path: str = "single_progress", timeout: float = 120
    ) -> dict[str, Any]:
        """The progress answer once it is no longer ``processing`` (real time, as a safety
        net only)."""
        async with asyncio.timeout(timeout):
            while True:
                answer = (await self.http.get(f"/{path}/{processing_id}")).json()
                if answer["status"] != "processing":
                    return answer
                await asyncio.sleep(0.05)


@asynccontextmanager
async def open_photo_stack(
    database_url: str,
    data_dir: Path,
    *,
    simulate: bool = False,
    sim: dict[str, Any] | None = None,
    clock: ManualClock | None = None,
    **overrides: Any,
) -> AsyncIterator[PhotoStack]:
    simulator: RunningSimulator | None = None
    if simulate:
        config = SimConfig.model_validate({"latency_min": 0, "latency_max": 0, **(sim or {})})
        simulator = await start_simulator(config, "127.0.0.1", clock=clock)
        overrides.update(simulate=True, simulator_url=simulator.base_url)
    if clock is not None:
        # Heartbeats are stamped with the manual clock: moving it by days must not make the
        # worker look dead (its tasks would run twice).
        overrides.setdefault("heartbeat_timeout", 1e9)
    settings = fast_settings(database_url, data_dir, **overrides)
    app = create_app(settings, clock=clock)
    try:
        async with (
            serving(app) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=120) as http,
        ):
            yield PhotoStack(base_url, http, app, simulator, clock)
    finally:
        if simulator is not None:
            await simulator.close()
