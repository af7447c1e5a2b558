"""A client that does exactly what seed 000's two Python clients do, written for these tests.

Same requests (path, method, headers, a body serialised the way ``requests`` does it:
``json.dumps`` with its default separators and ``ensure_ascii``), same signature, same
handling of answers: 200 is the sync result, 201 the batch's ``job_id``, 202 from
``batch-results`` means "not ready", anything else is an exception whose text carries the
status and the body (the seed's callers look for "timeout" in it). ``wait_for_completion``
polls ``batch-status`` like the seed (``status``, ``progress.completion_percentage``,
``error_message``); its sleep and clock are parameters so a test can move a ``ManualClock``
instead of waiting, and it records every status it saw.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx


class SeedClientError(Exception):
    """What the seed's clients raise (``Exception(f"API Error: ...")`` and friends)."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(message)
        self.status = response.status_code
        self.body = response.json() if response.content else None


class SeedClient:
    def __init__(self, base_url: str, shared_key: str) -> None:
        self.base_url = base_url
        self.shared_key = shared_key
        self.seen: list[tuple[str, float]] = []

    def generate_signature(self, lots_data: list[dict[str, Any]]) -> str:
        normalized = json.dumps(lots_data, separators=(",", ":"), sort_keys=True)
        return hmac.new(self.shared_key.encode(), normalized.encode(), hashlib.sha256).hexdigest()

    async def post_payload(self, payload: Any, *, timeout: float | None = None) -> httpx.Response:
        """POST a body as ``requests.post(json=payload)`` serialises it."""
        async with httpx.AsyncClient(timeout=timeout) as http:
            return await http.post(
                f"{self.base_url}/api/v1/generate-descriptions",
                content=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )

    async def sync_generate(
        self,
        lot_id: str,
        images: list[str],
        additional_info: str = "",
        languages: list[str] | None = None,
    ) -> dict[str, Any]:
        lots = [
            {
                "lot_id": lot_id,
                "additional_info": additional_info,
                "images": [{"url": url} for url in images],
            }
        ]
        payload = {
            "signature": self.generate_signature(lots),
            "version": "1.0.0",
            "languages": languages if languages is not None else ["en"],
            "lots": lots,
        }
        response = await self.post_payload(payload, timeout=300)
        if response.status_code == 200:
            result: dict[str, Any] = response.json()
            return result
        raise SeedClientError(f"API Error: {response.status_code} - {response.text}", response)

    async def create_batch_job(
        self, cars_data: list[dict[str, Any]], languages: list[str] | None = None
    ) -> str:
        payload = {
            "signature": self.generate_signature(cars_data),
            "version": "1.0.0",
            "languages": languages if languages is not None else ["en"],
            "lots": cars_data,
        }
        response = await self.post_payload(payload)
        if response.status_code == 201:
            job_id: str = response.json()["job_id"]
            return job_id
        raise SeedClientError(f"Failed to create job: {response.text}", response)

    async def get_job_status(self, job_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.base_url}/api/v1/batch-status/{job_id}")
        if response.status_code == 200:
            status: dict[str, Any] = response.json()
            return status
        raise SeedClientError(f"Failed to get status: {response.text}", response)

    async def get_results(self, job_id: str) -> dict[str, Any] | None:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.base_url}/api/v1/batch-results/{job_id}")
        if response.status_code == 200:
            results: dict[str, Any] = response.json()
            return results
        if response.status_code == 202:
            return None
        raise SeedClientError(f"Failed to get results: {response.text}", response)

    async def wait_for_completion(
        self,
        job_id: str,
        max_wait_time: float = 3600,
        poll_interval: float = 30,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[str, Any] | None:
        start_time = clock()
        while clock() - start_time < max_wait_time:
            status = await self.get_job_status(job_id)
            self.seen.append((status["status"], status["progress"]["completion_percentage"]))
            if status["status"] == "completed":
                return await self.get_results(job_id)
            if status["status"] in ("failed", "cancelled"):
                message = status.get("error_message", "Unknown error")
                raise SeedClientError(f"Job {status['status']}: {message}", _NO_RESPONSE)
            await sleep(poll_interval)
        raise SeedClientError(f"Job timeout after {max_wait_time} seconds", _NO_RESPONSE)


_NO_RESPONSE = httpx.Response(0)


def lot(lot_id: str, *urls: str, info: str = "") -> dict[str, Any]:
    return {"lot_id": lot_id, "additional_info": info, "images": [{"url": u} for u in urls]}
