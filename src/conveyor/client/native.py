"""Python SDK for the native API: ``Conveyor`` (sync) and ``AsyncConveyor``.

    from conveyor.client import Conveyor
    with Conveyor("http://127.0.0.1:8000", api_key="cvk_...") as cv:
        job = cv.create_job(recipe="image-finish", items=[...], idempotency_key="batch-42")
        job = cv.wait(job["id"], on_progress=lambda p: print(p["status"], p["percent"]))
        cv.download(job["id"], "results.zip", format="zip")

The twins have the same methods with the same arguments and answers; each call is built
once (``_native_calls``) and only the transport differs. Errors come back as ``ApiError``
with the server's ``error`` code and message. ``wait`` follows the job's Server-Sent Events
and falls back to polling if the stream breaks; either way ``on_progress`` receives the
same flat dict (``job_id``, ``status``, ``total``, ``completed``, ``failed``,
``cancelled``, ``pending``, ``percent``) each time the progress changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx

from conveyor.client import _calls
from conveyor.client import _native_calls as calls
from conveyor.client._native_calls import FINISHED, ApiError, DownloadFormat, ProgressCallback

__all__ = ["FINISHED", "ApiError", "AsyncConveyor", "Conveyor", "ProgressCallback"]


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Conveyor(_calls.SyncCaller):
    """The native API over a blocking ``httpx.Client``; ``with`` closes its connections."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """A client of the server at ``base_url``, sending ``api_key`` as a Bearer token
        (none: open mode, on a server with no key yet). ``timeout`` is per request, in
        seconds; ``transport`` replaces the network (``httpx.MockTransport`` in tests)."""
        super().__init__(
            httpx.Client(
                base_url=base_url.rstrip("/"),
                headers=_headers(api_key),
                timeout=timeout,
                transport=transport,
            )
        )

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any API call (catalogue, compatibility APIs); errors raise ``ApiError``."""
        return self._send(calls.any_call(method, path, **kwargs))

    def create_job(
        self,
        *,
        items: list[Any],
        recipe: str | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        languages: list[str] | None = None,
        priority: int = 0,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        """Submit a job (a ``recipe`` or a ``model``); the same ``idempotency_key`` returns
        the same job. ``wait`` holds the answer up to that many seconds for it to finish."""
        return self._send(
            calls.create_job(
                items=items,
                recipe=recipe,
                model=model,
                options=options,
                languages=languages,
                priority=priority,
                webhook_url=webhook_url,
                idempotency_key=idempotency_key,
                wait=wait,
            )
        )

    def estimate_job(
        self,
        *,
        items: list[Any],
        recipe: str | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        languages: list[str] | None = None,
    ) -> dict[str, Any]:
        """What a job would cost and which models it would call, with every check a real
        submission makes; nothing is created (``POST /v1/jobs`` with ``dry_run``)."""
        return self._send(
            calls.estimate_job(
                items=items, recipe=recipe, model=model, options=options, languages=languages
            )
        )

    def get_job(self, job_id: str) -> dict[str, Any]:
        """The job as it is now: status, stage, progress counts, cost."""
        return self._send(calls.get_job(job_id))

    def list_jobs(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of this client's jobs, newest first; pass ``next_cursor`` for the next."""
        return self._send(calls.list_jobs(status, limit, cursor))

    def results(self, job_id: str) -> dict[str, Any]:
        """Every item's outcome: outputs (asset ids and URLs) or the error."""
        return self._send(calls.results(job_id))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel what has not finished yet (finished items keep their results); returns
        the job."""
        return self._send(calls.cancel(job_id))

    def retry(self, job_id: str) -> dict[str, Any]:
        """Run the job's failed items again (cancelled ones too, on a server that retries
        them): ``{"job", "retried"}``, the job and how many items run again."""
        return self._send(calls.retry(job_id))

    def upload(self, path: str | Path) -> dict[str, Any]:
        """Store a local file as an asset; use its ``id`` as ``{"asset_id": ...}`` input."""
        file = Path(path)
        with file.open("rb") as handle:
            return self._send(calls.upload(file.name, handle))

    def asset_content(self, asset_id: str) -> bytes:
        """The bytes of a stored asset."""
        return self._send(calls.asset_content(asset_id))

    def download(
        self, job_id: str, destination: str | Path, *, format: DownloadFormat = "zip"
    ) -> Path:
        """Stream the job's results (``zip`` of the files, or ``json``) to ``destination``."""
        target = Path(destination)
        with self._stream(calls.download(job_id, format)) as response, target.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
        return target

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-Sent Events of a job until it finishes: ``(event, data)`` pairs."""
        with self._stream(calls.events(job_id)) as response:
            parser = calls.SseParser()
            for line in response.iter_lines():
                if (parsed := parser.feed(line)) is not None:
                    yield parsed

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Block until the job finishes and return it (``TimeoutError`` after ``timeout``).

        Follows the job's event stream, and polls every ``poll_interval`` seconds if the
        stream breaks. ``on_progress`` gets ``{"job_id", "status", "total", "completed",
        "failed", "cancelled", "pending", "percent"}`` at each change. A blocking read
        cannot be cut short, so the deadline is checked at each line of the stream (the
        server sends one at least every 15 s) and no read waits past the time left.
        """
        rule = calls.WaitRule(
            job_id, timeout=timeout, poll_interval=poll_interval, on_progress=on_progress
        )
        try:
            with self._stream(rule.events_call()) as response:
                for line in response.iter_lines():
                    if (finished := rule.line(line)) is not None:
                        return finished
        except (httpx.HTTPError, ValueError):
            pass  # the stream broke: fall back to polling
        while True:
            if (finished := rule.polled(self.get_job(job_id))) is not None:
                return finished
            time.sleep(rule.pause())


class AsyncConveyor(_calls.AsyncCaller):
    """The native API over an ``httpx.AsyncClient``; ``async with`` closes its connections."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """A client of the server at ``base_url``, sending ``api_key`` as a Bearer token
        (none: open mode, on a server with no key yet). ``timeout`` is per request, in
        seconds; ``transport`` replaces the network (``httpx.MockTransport`` in tests)."""
        super().__init__(
            httpx.AsyncClient(
                base_url=base_url.rstrip("/"),
                headers=_headers(api_key),
                timeout=timeout,
                transport=transport,
            )
        )

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any API call (catalogue, compatibility APIs); errors raise ``ApiError``."""
        return await self._send(calls.any_call(method, path, **kwargs))

    async def create_job(
        self,
        *,
        items: list[Any],
        recipe: str | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        languages: list[str] | None = None,
        priority: int = 0,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        """Submit a job (a ``recipe`` or a ``model``); the same ``idempotency_key`` returns
        the same job. ``wait`` holds the answer up to that many seconds for it to finish."""
        return await self._send(
            calls.create_job(
                items=items,
                recipe=recipe,
                model=model,
                options=options,
                languages=languages,
                priority=priority,
                webhook_url=webhook_url,
                idempotency_key=idempotency_key,
                wait=wait,
            )
        )

    async def estimate_job(
        self,
        *,
        items: list[Any],
        recipe: str | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        languages: list[str] | None = None,
    ) -> dict[str, Any]:
        """What a job would cost and which models it would call, with every check a real
        submission makes; nothing is created (``POST /v1/jobs`` with ``dry_run``)."""
        return await self._send(
            calls.estimate_job(
                items=items, recipe=recipe, model=model, options=options, languages=languages
            )
        )

    async def get_job(self, job_id: str) -> dict[str, Any]:
        """The job as it is now: status, stage, progress counts, cost."""
        return await self._send(calls.get_job(job_id))

    async def list_jobs(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of this client's jobs, newest first; pass ``next_cursor`` for the next."""
        return await self._send(calls.list_jobs(status, limit, cursor))

    async def results(self, job_id: str) -> dict[str, Any]:
        """Every item's outcome: outputs (asset ids and URLs) or the error."""
        return await self._send(calls.results(job_id))

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel what has not finished yet (finished items keep their results); returns
        the job."""
        return await self._send(calls.cancel(job_id))

    async def retry(self, job_id: str) -> dict[str, Any]:
        """Run the job's failed items again (cancelled ones too, on a server that retries
        them): ``{"job", "retried"}``, the job and how many items run again."""
        return await self._send(calls.retry(job_id))

    async def upload(self, path: str | Path) -> dict[str, Any]:
        """Store a local file as an asset; use its ``id`` as ``{"asset_id": ...}`` input."""
        file = Path(path)
        content = await asyncio.to_thread(file.read_bytes)
        return await self._send(calls.upload(file.name, content))

    async def asset_content(self, asset_id: str) -> bytes:
        """The bytes of a stored asset."""
        return await self._send(calls.asset_content(asset_id))

    async def download(
        self, job_id: str, destination: str | Path, *, format: DownloadFormat = "zip"
    ) -> Path:
        """Stream the job's results (``zip`` of the files, or ``json``) to ``destination``."""
        target = Path(destination)
        async with self._stream(calls.download(job_id, format)) as response:
            out = await asyncio.to_thread(target.open, "wb")
            try:
                async for chunk in response.aiter_bytes():
                    await asyncio.to_thread(out.write, chunk)
            finally:
                await asyncio.to_thread(out.close)
        return target

    async def events(self, job_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Server-Sent Events of a job until it finishes: ``(event, data)`` pairs."""
        async with self._stream(calls.events(job_id)) as response:
            parser = calls.SseParser()
            async for line in response.aiter_lines():
                if (parsed := parser.feed(line)) is not None:
                    yield parsed

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Wait until the job finishes and return it (``TimeoutError`` after ``timeout``).

        Follows the job's event stream, and polls every ``poll_interval`` seconds if the
        stream breaks. ``on_progress`` gets ``{"job_id", "status", "total", "completed",
        "failed", "cancelled", "pending", "percent"}`` at each change. The deadline cuts
        the wait short wherever it is.
        """
        rule = calls.WaitRule(
            job_id, timeout=timeout, poll_interval=poll_interval, on_progress=on_progress
        )
        try:
            async with asyncio.timeout(timeout):
                try:
                    async with self._stream(rule.events_call()) as response:
                        async for line in response.aiter_lines():
                            if (finished := rule.line(line)) is not None:
                                return finished
                except (httpx.HTTPError, ValueError):
                    pass  # the stream broke: fall back to polling
                while True:
                    if (finished := rule.polled(await self.get_job(job_id))) is not None:
                        return finished
                    await asyncio.sleep(rule.pause())
        except TimeoutError:
            raise rule.timed_out() from None
