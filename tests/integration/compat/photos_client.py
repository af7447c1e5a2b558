"""Seed 004's Python and JavaScript examples, as their clients send them, for these tests.

``python_example`` is the seed's Python example line for line (``requests`` calls made with
``httpx``): the photo posted from an open file with ``data={'lora_version': 'v2',
'enhance': 'true'}``, ``/single_progress`` polled until ``completed`` or ``error``, then
``/single_image/{id}/final`` downloaded and written to ``result.png``. Only the host
differs, and the pause between polls is a parameter (the seed sleeps 2 s). It records every
progress answer it saw.

``javascript_example`` sends what the seed's JavaScript sends from a browser: a
``FormData`` with the file (its name and type, as a browser attaches them) and
``lora_version``, the same polling, then the final as an ``<img src>`` would fetch it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class SeedRun:
    processing_id: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    result: bytes | None = None
    error: str | None = None


async def python_example(
    base_url: str,
    photo: Path,
    *,
    data: dict[str, str] | None = None,
    out: Path | None = None,
    pause: float = 0.05,
    timeout: float = 120,
    headers: dict[str, str] | None = None,
) -> SeedRun:
    async with httpx.AsyncClient(timeout=60, headers=headers) as requests:
        # Загрузка и обработка изображения
        with photo.open("rb") as f:
            response = await requests.post(
                f"{base_url}/process_single",
                files={"file": f},
                data=data if data is not None else {"lora_version": "v2", "enhance": "true"},
            )
        processing_id = response.json()["processing_id"]
        run = SeedRun(processing_id)
        # Отслеживание прогресса
        async with asyncio.timeout(timeout):
            while True:
                progress = await requests.get(f"{base_url}/single_progress/{processing_id}")
                status = progress.json()
                run.seen.append(status)
                if status["status"] == "completed":
                    # Скачивание результата
                    result = await requests.get(f"{base_url}/single_image/{processing_id}/final")
                    (out or photo.with_name("result.png")).write_bytes(result.content)
                    run.result = result.content
                    break
                elif status["status"] == "error":
                    run.error = status["error"]
                    break
                await asyncio.sleep(pause)
    return run


async def javascript_example(
    base_url: str, photo: bytes, filename: str, *, pause: float = 0.05, timeout: float = 120
) -> SeedRun:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as fetch:
        # formData.append('file', fileInput.files[0]); formData.append('lora_version', 'v2');
        data = await fetch.post(
            "/process_single",
            files={"file": (filename, photo, "image/jpeg")},
            data={"lora_version": "v2"},
            headers={"Origin": base_url, "Accept": "*/*"},
        )
        processing_id = data.json()["processing_id"]
        run = SeedRun(processing_id)
        async with asyncio.timeout(timeout):
            while True:
                status = (await fetch.get(f"/single_progress/{processing_id}")).json()
                run.seen.append(status)
                if status["status"] == "completed":
                    image = await fetch.get(
                        f"/single_image/{processing_id}/final", headers={"Accept": "image/*"}
                    )
                    assert image.headers["content-type"] == "image/png"
                    run.result = image.content
                    break
                if status["status"] == "error":
                    run.error = status["error"]
                    break
                await asyncio.sleep(pause)
    return run
