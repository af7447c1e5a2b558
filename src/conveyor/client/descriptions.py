"""A thin client for the vehicle-damage descriptions API (seed 000), signing included.

    from conveyor.client.descriptions import DescriptionsClient
    with DescriptionsClient("http://127.0.0.1:8000", "shared-key", client_name="acme") as api:
        answer = api.sync_generate("car-1", ["https://cdn.example/front.jpg"], "2021 BMW X5",
                                   languages=["en", "ru", "de"])
        job_id = api.create_batch_job(lots, languages=["en", "ru"])
        results = api.wait_for_completion(job_id, poll_interval=15)

The methods are the seed's (``sync_generate``, ``create_batch_job``, ``get_job_status``,
``get_results``, ``wait_for_completion``) and behave like them, so code written for the
seed's ``GenerationServiceClient``/``AsyncGenerationClient`` keeps working; ``list_jobs``,
``cancel_job`` and ``download_results`` add the endpoints the seed left unauthenticated,
signed with the ``X-Client``/``X-Timestamp``/``X-Signature`` headers (they need
``client_name``: the name the server has the key under). Failures raise
``DescriptionsError``, whose text is ``"API Error: <status> - <body>"`` as in the seed, so
``"timeout" in str(error).lower()`` still spots a sync request that ran out of time; that
case is ``DescriptionsTimeout`` and carries the ``job_id`` whose result can be read later.
``AsyncDescriptionsClient`` has the same methods as coroutines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from conveyor.compat.descriptions.signing import sign_lots, signed_headers

__all__ = [
    "AsyncDescriptionsClient",
    "DescriptionsClient",
    "DescriptionsError",
    "DescriptionsTimeout",
    "make_lot",
]

VERSION = "1.0.0"
SYNC_TIMEOUT = 300.0  # the seed's clients wait this long for a sync answer
JOBS_PATH = "/api/v1/batch-jobs"
StatusCallback = Callable[[dict[str, Any]], None]


class DescriptionsError(Exception):
    """A non-success answer; ``status`` and the parsed ``body`` (if JSON) are kept."""

    def __init__(
        self, status: int, text: str, body: Any = None, *, message: str | None = None
    ) -> None:
        super().__init__(message or f"API Error: {status} - {text}")
        self.status = status
        self.body = body


class DescriptionsTimeout(DescriptionsError):
    """A sync request not done within the server's wait; the job goes on as ``job_id``."""

    def __init__(self, status: int, text: str, body: Any, job_id: str) -> None:
        super().__init__(status, text, body)
        self.job_id = job_id


def make_lot(lot_id: str, images: Sequence[str], additional_info: str = "") -> dict[str, Any]:
    """A lot as the API takes it."""
    return {
        "lot_id": lot_id,
        "additional_info": additional_info,
        "images": [{"url": url} for url in images],
    }


def _payload(lots: list[dict[str, Any]], languages: Sequence[str], key: str) -> dict[str, Any]:
    return {
        "signature": sign_lots(lots, key),
        "version": VERSION,
        "languages": list(languages),
        "lots": lots,
    }


def _error(response: httpx.Response) -> DescriptionsError:
    try:
        body = response.json()
    except ValueError:
        body = None
    job_id = body.get("job_id") if isinstance(body, dict) else None
    if response.status_code == 504 and isinstance(job_id, str):
        return DescriptionsTimeout(response.status_code, response.text, body, job_id)
    return DescriptionsError(response.status_code, response.text, body)


def _expect(response: httpx.Response, *statuses: int) -> Any:
    if response.status_code not in statuses:
        raise _error(response)
    return response.json()


def _list_query(status: str | None, limit: int, offset: int) -> list[tuple[str, str]]:
    query = [("limit", str(limit)), ("offset", str(offset))]
    return [("status", status), *query] if status else query


def _finished(status: Mapping[str, Any], job_id: str) -> bool:
    """True when completed; raises for failed or cancelled, as the seed's client does."""
    if status["status"] == "completed":
        return True
    if status["status"] in ("failed", "cancelled"):
        reason = status.get("error_message", "Unknown error")
        message = f"Job {status['status']}: {reason}"
        raise DescriptionsError(200, message, dict(status), message=message)
    return False


class _Signer:
    def __init__(self, shared_key: str, client_name: str | None) -> None:
        self.shared_key = shared_key
        self.client_name = client_name

    def headers(self, method: str, path: str, query: list[tuple[str, str]]) -> dict[str, str]:
        if not self.client_name:
            raise ValueError("client_name is required for list_jobs and cancel_job")
        return signed_headers(
            method, path, query, client=self.client_name, shared_key=self.shared_key
        )


class DescriptionsClient:
    """Synchronous client (httpx); ``with`` closes its connections."""

    def __init__(
        self,
        base_url: str,
        shared_key: str,
        *,
        client_name: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._signer = _Signer(shared_key, client_name)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    def __enter__(self) -> DescriptionsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def generate_signature(self, lots: list[dict[str, Any]]) -> str:
        return sign_lots(lots, self._signer.shared_key)

    def generate(
        self, lots: list[dict[str, Any]], languages: Sequence[str] = ("en",)
    ) -> dict[str, Any]:
        """One lot: the descriptions (200). Two or more: the accepted batch (201)."""
        payload = _payload(lots, languages, self._signer.shared_key)
        response = self._http.post(
            "/api/v1/generate-descriptions", json=payload, timeout=SYNC_TIMEOUT
        )
        result: dict[str, Any] = _expect(response, 200, 201)
        return result

    def sync_generate(
        self,
        lot_id: str,
        images: Sequence[str],
        additional_info: str = "",
        languages: Sequence[str] = ("en",),
    ) -> dict[str, Any]:
        return self.generate([make_lot(lot_id, images, additional_info)], languages)

    def create_batch_job(
        self, lots: list[dict[str, Any]], languages: Sequence[str] = ("en",)
    ) -> str:
        if len(lots) < 2:
            raise ValueError("a batch needs two or more lots; use sync_generate for one")
        return str(self.generate(lots, languages)["job_id"])

    def get_job_status(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = _expect(self._http.get(f"/api/v1/batch-status/{job_id}"), 200)
        return result

    def get_results(self, job_id: str) -> dict[str, Any] | None:
        """The results once the job is finished; ``None`` while it runs (202)."""
        response = self._http.get(f"/api/v1/batch-results/{job_id}")
        result: dict[str, Any] = _expect(response, 200, 202)
        return result if response.status_code == 200 else None

    def wait_for_completion(
        self,
        job_id: str,
        max_wait_time: float = 3600,
        poll_interval: float = 30,
        *,
        on_status: StatusCallback | None = None,
    ) -> dict[str, Any]:
        """Poll until completed and return the results; raise if it failed or was cancelled."""
        deadline = time.monotonic() + max_wait_time
        while time.monotonic() < deadline:
            status = self.get_job_status(job_id)
            if on_status:
                on_status(status)
            if _finished(status, job_id):
                results = self.get_results(job_id)
                if results is not None:
                    return results
            time.sleep(poll_interval)
        raise TimeoutError(f"Job timeout after {max_wait_time} seconds")

    def download_results(self, job_id: str, destination: str | Path) -> Path:
        """Save the results file of a finished job (``DescriptionsError`` 202 before)."""
        response = self._http.get(f"/api/v1/batch-results/{job_id}/download")
        _expect(response, 200)
        target = Path(destination)
        target.write_bytes(response.content)
        return target

    def list_jobs(
        self, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> dict[str, Any]:
        query = _list_query(status, limit, offset)
        headers = self._signer.headers("GET", JOBS_PATH, query)
        result: dict[str, Any] = _expect(
            self._http.get(JOBS_PATH, params=tuple(query), headers=headers), 200
        )
        return result

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        path = f"{JOBS_PATH}/{job_id}/cancel"
        headers = self._signer.headers("POST", path, [])
        result: dict[str, Any] = _expect(self._http.post(path, headers=headers), 200)
        return result


class AsyncDescriptionsClient:
    """The same API as ``DescriptionsClient``, for asyncio code."""

    def __init__(
        self,
        base_url: str,
        shared_key: str,
        *,
        client_name: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._signer = _Signer(shared_key, client_name)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncDescriptionsClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def generate(
        self, lots: list[dict[str, Any]], languages: Sequence[str] = ("en",)
    ) -> dict[str, Any]:
        payload = _payload(lots, languages, self._signer.shared_key)
        response = await self._http.post(
            "/api/v1/generate-descriptions", json=payload, timeout=SYNC_TIMEOUT
        )
        result: dict[str, Any] = _expect(response, 200, 201)
        return result

    async def sync_generate(
        self,
        lot_id: str,
        images: Sequence[str],
        additional_info: str = "",
        languages: Sequence[str] = ("en",),
    ) -> dict[str, Any]:
        return await self.generate([make_lot(lot_id, images, additional_info)], languages)

    async def create_batch_job(
        self, lots: list[dict[str, Any]], languages: Sequence[str] = ("en",)
    ) -> str:
        if len(lots) < 2:
            raise ValueError("a batch needs two or more lots; use sync_generate for one")
        return str((await self.generate(lots, languages))["job_id"])

    async def get_job_status(self, job_id: str) -> dict[str, Any]:
        response = await self._http.get(f"/api/v1/batch-status/{job_id}")
        result: dict[str, Any] = _expect(response, 200)
        return result

    async def get_results(self, job_id: str) -> dict[str, Any] | None:
        response = await self._http.get(f"/api/v1/batch-results/{job_id}")
        result: dict[str, Any] = _expect(response, 200, 202)
        return result if response.status_code == 200 else None

    async def wait_for_completion(
        self,
        job_id: str,
        max_wait_time: float = 3600,
        poll_interval: float = 30,
        *,
        on_status: StatusCallback | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + max_wait_time
        while time.monotonic() < deadline:
            status = await self.get_job_status(job_id)
            if on_status:
                on_status(status)
            if _finished(status, job_id):
                results = await self.get_results(job_id)
                if results is not None:
                    return results
            await asyncio.sleep(poll_interval)
        raise TimeoutError(f"Job timeout after {max_wait_time} seconds")

    async def download_results(self, job_id: str, destination: str | Path) -> Path:
        response = await self._http.get(f"/api/v1/batch-results/{job_id}/download")
        _expect(response, 200)
        target = Path(destination)
        await asyncio.to_thread(target.write_bytes, response.content)
        return target

    async def list_jobs(
        self, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> dict[str, Any]:
        query = _list_query(status, limit, offset)
        headers = self._signer.headers("GET", JOBS_PATH, query)
        response = await self._http.get(JOBS_PATH, params=tuple(query), headers=headers)
        result: dict[str, Any] = _expect(response, 200)
        return result

    async def cancel_job(self, job_id: str) -> dict[str, Any]:
        path = f"{JOBS_PATH}/{job_id}/cancel"
        headers = self._signer.headers("POST", path, [])
        result: dict[str, Any] = _expect(await self._http.post(path, headers=headers), 200)
        return result
