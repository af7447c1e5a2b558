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
``AsyncDescriptionsClient`` has the same methods as coroutines; each request is built once
(``_descriptions_calls``) and only the transport differs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from conveyor.client import _calls
from conveyor.client import _descriptions_calls as calls
from conveyor.client._descriptions_calls import (
    JOBS_PATH,
    SYNC_TIMEOUT,
    VERSION,
    DescriptionsError,
    DescriptionsTimeout,
    StatusCallback,
    make_lot,
)

__all__ = [
    "JOBS_PATH",
    "SYNC_TIMEOUT",
    "VERSION",
    "AsyncDescriptionsClient",
    "DescriptionsClient",
    "DescriptionsError",
    "DescriptionsTimeout",
    "StatusCallback",
    "make_lot",
]


def _batch(lots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(lots) < 2:
        raise ValueError("a batch needs two or more lots; use sync_generate for one")
    return lots


class DescriptionsClient(_calls.SyncCaller):
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
        """A client of the seed-000 API at ``base_url``: ``shared_key`` signs requests,
        ``client_name`` (the ``X-Client`` header) is needed by the calls that list or
        cancel a client's batches. ``timeout`` is per request, in seconds; ``transport``
        replaces the network (``httpx.MockTransport`` in tests)."""
        self._signer = calls.Signer(shared_key, client_name)
        super().__init__(
            httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        )

    def generate_signature(self, lots: list[dict[str, Any]]) -> str:
        """The body signature the API expects for these lots (the seed's ``signature``)."""
        return self._signer.lots(lots)

    def generate(
        self, lots: list[dict[str, Any]], languages: Sequence[str] = ("en",)
    ) -> dict[str, Any]:
        """One lot: the descriptions (200). Two or more: the accepted batch (201)."""
        return self._send(calls.generate(self._signer, lots, languages))

    def sync_generate(
        self,
        lot_id: str,
        images: Sequence[str],
        additional_info: str = "",
        languages: Sequence[str] = ("en",),
    ) -> dict[str, Any]:
        """Describe one lot and wait for the answer (``DescriptionsTimeout`` if it is late)."""
        return self.generate([make_lot(lot_id, images, additional_info)], languages)

    def create_batch_job(
        self, lots: list[dict[str, Any]], languages: Sequence[str] = ("en",)
    ) -> str:
        """Submit two or more lots as a batch; returns its job id."""
        return str(self.generate(_batch(lots), languages)["job_id"])

    def get_job_status(self, job_id: str) -> dict[str, Any]:
        """The batch's status and progress."""
        return self._send(calls.job_status(job_id))

    def get_results(self, job_id: str) -> dict[str, Any] | None:
        """The results once the job is finished; ``None`` while it runs (202)."""
        return self._send(calls.results(job_id))

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
            if calls.finished(status) and (results := self.get_results(job_id)) is not None:
                return results
            time.sleep(poll_interval)
        raise TimeoutError(f"Job timeout after {max_wait_time} seconds")

    def download_results(self, job_id: str, destination: str | Path) -> Path:
        """Save the results file of a finished job (``DescriptionsError`` 202 before)."""
        target = Path(destination)
        target.write_bytes(self._send(calls.download(job_id)))
        return target

    def list_jobs(
        self, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> dict[str, Any]:
        """One page of this client's batches, newest first (signed; needs ``client_name``)."""
        return self._send(calls.list_jobs(self._signer, status, limit, offset))

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a batch that has not finished (signed; needs ``client_name``)."""
        return self._send(calls.cancel_job(self._signer, job_id))


class AsyncDescriptionsClient(_calls.AsyncCaller):
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
        """A client of the seed-000 API at ``base_url``: ``shared_key`` signs requests,
        ``client_name`` (the ``X-Client`` header) is needed by the calls that list or
        cancel a client's batches. ``timeout`` is per request, in seconds; ``transport``
        replaces the network (``httpx.MockTransport`` in tests)."""
        self._signer = calls.Signer(shared_key, client_name)
        super().__init__(
            httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        )

    def generate_signature(self, lots: list[dict[str, Any]]) -> str:
        """The body signature the API expects for these lots (the seed's ``signature``)."""
        return self._signer.lots(lots)

    async def generate(
        self, lots: list[dict[str, Any]], languages: Sequence[str] = ("en",)
    ) -> dict[str, Any]:
        """One lot: the descriptions (200). Two or more: the accepted batch (201)."""
        return await self._send(calls.generate(self._signer, lots, languages))

    async def sync_generate(
        self,
        lot_id: str,
        images: Sequence[str],
        additional_info: str = "",
        languages: Sequence[str] = ("en",),
    ) -> dict[str, Any]:
        """Describe one lot and wait for the answer (``DescriptionsTimeout`` if it is late)."""
        return await self.generate([make_lot(lot_id, images, additional_info)], languages)

    async def create_batch_job(
        self, lots: list[dict[str, Any]], languages: Sequence[str] = ("en",)
    ) -> str:
        """Submit two or more lots as a batch; returns its job id."""
        return str((await self.generate(_batch(lots), languages))["job_id"])

    async def get_job_status(self, job_id: str) -> dict[str, Any]:
        """The batch's status and progress."""
        return await self._send(calls.job_status(job_id))

    async def get_results(self, job_id: str) -> dict[str, Any] | None:
        """The results once the job is finished; ``None`` while it runs (202)."""
        return await self._send(calls.results(job_id))

    async def wait_for_completion(
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
            status = await self.get_job_status(job_id)
            if on_status:
                on_status(status)
            if calls.finished(status) and (results := await self.get_results(job_id)) is not None:
                return results
            await asyncio.sleep(poll_interval)
        raise TimeoutError(f"Job timeout after {max_wait_time} seconds")

    async def download_results(self, job_id: str, destination: str | Path) -> Path:
        """Save the results file of a finished job (``DescriptionsError`` 202 before)."""
        target = Path(destination)
        content = await self._send(calls.download(job_id))
        await asyncio.to_thread(target.write_bytes, content)
        return target

    async def list_jobs(
        self, status: str | None = None, limit: int = 20, offset: int = 0
    ) -> dict[str, Any]:
        """One page of this client's batches, newest first (signed; needs ``client_name``)."""
        return await self._send(calls.list_jobs(self._signer, status, limit, offset))

    async def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a batch that has not finished (signed; needs ``client_name``)."""
        return await self._send(calls.cancel_job(self._signer, job_id))
