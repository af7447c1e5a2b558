"""Python SDK for the native API: ``Conveyor`` (sync) and ``AsyncConveyor``.

    from conveyor.client import Conveyor
    with Conveyor("http://127.0.0.1:8000", api_key="cvk_...") as cv:
        job = cv.create_job(recipe="image-finish", items=[...], idempotency_key="batch-42")
        job = cv.wait(job["id"], on_progress=print)
        cv.download(job["id"], "results.zip", format="zip")

Errors come back as ``ApiError`` with the server's ``error`` code and message. ``wait``
follows the job's Server-Sent Events and falls back to polling if the stream breaks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx

FINISHED = ("completed", "failed", "cancelled")
ProgressCallback = Callable[[dict[str, Any]], None]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        raise ApiError(response.status_code, str(body["error"]), str(body.get("message")), body)
    raise ApiError(response.status_code, "HTTP_ERROR", response.text[:500], body)


def _job_body(
    *,
    recipe: str | None,
    model: str | None,
    items: list[Any],
    options: dict[str, Any] | None,
    languages: list[str] | None,
    priority: int,
    webhook_url: str | None,
    idempotency_key: str | None,
    wait: float | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"items": items, "priority": priority}
    for name, value in (
        ("recipe", recipe),
        ("model", model),
        ("options", options),
        ("languages", languages),
        ("webhook_url", webhook_url),
        ("idempotency_key", idempotency_key),
        ("wait", wait),
    ):
        if value is not None:
            body[name] = value
    return body


class _SseParser:
    """Server-Sent Events, one line at a time: ``feed`` returns a complete event or None."""

    def __init__(self) -> None:
        self._event = "message"

    def feed(self, line: str) -> tuple[str, dict[str, Any]] | None:
        if line.startswith("event: "):
            self._event = line[7:]
        elif line.startswith("data: "):
            event, self._event = self._event, "message"
            return event, json.loads(line[6:])
        return None


def _followed(
    event: str, data: dict[str, Any], on_progress: ProgressCallback | None
) -> dict[str, Any] | None:
    """What ``wait`` does with one event: report progress; the finished job ends the wait."""
    if event in ("job", "progress") and on_progress:
        on_progress(data)
    return data if event == "finished" else None


class Conveyor:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Conveyor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        _raise_for(response)
        return response.json()

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any API call (catalogue, compatibility APIs); errors raise ``ApiError``."""
        return self._json(method, path, **kwargs)

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
        body = _job_body(
            recipe=recipe,
            model=model,
            items=items,
            options=options,
            languages=languages,
            priority=priority,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
            wait=wait,
        )
        timeout = (wait or 0) + 30
        result: dict[str, Any] = self._json("POST", "/v1/jobs", json=body, timeout=timeout)
        return result

    def get_job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/jobs/{job_id}")
        return result

    def list_jobs(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = self._json("GET", "/v1/jobs", params=params)
        return result

    def results(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/jobs/{job_id}/results")
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"/v1/jobs/{job_id}/cancel")
        return result

    def retry(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"/v1/jobs/{job_id}/retry")
        return result

    def upload(self, path: str | Path) -> dict[str, Any]:
        file = Path(path)
        with file.open("rb") as handle:
            result: dict[str, Any] = self._json(
                "POST", "/v1/assets", files={"file": (file.name, handle)}
            )
        return result

    def asset_content(self, asset_id: str) -> bytes:
        response = self._http.get(f"/v1/assets/{asset_id}/content")
        _raise_for(response)
        return response.content

    def download(
        self, job_id: str, destination: str | Path, *, format: Literal["json", "zip"] = "zip"
    ) -> Path:
        """Stream the results file to ``destination``."""
        target = Path(destination)
        with self._http.stream(
            "GET", f"/v1/jobs/{job_id}/download", params={"format": format}
        ) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            with target.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        return target

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-Sent Events of a job until it finishes: ``(event, data)`` pairs."""
        with self._http.stream(
            "GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(30, read=None)
        ) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            parser = _SseParser()
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
        """Block until the job finishes (or ``timeout`` passes: ``TimeoutError``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if timeout is None:
            try:
                for event, data in self.events(job_id):
                    if (finished := _followed(event, data, on_progress)) is not None:
                        return finished
            except (httpx.HTTPError, ValueError):
                pass  # the stream broke: fall back to polling
        while True:
            job = self.get_job(job_id)
            if on_progress:
                on_progress(job)
            if job["status"] in FINISHED:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(poll_interval)


class AsyncConveyor:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncConveyor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        _raise_for(response)
        return response.json()

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
        body = _job_body(
            recipe=recipe,
            model=model,
            items=items,
            options=options,
            languages=languages,
            priority=priority,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
            wait=wait,
        )
        result: dict[str, Any] = await self._json(
            "POST", "/v1/jobs", json=body, timeout=(wait or 0) + 30
        )
        return result

    async def get_job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/jobs/{job_id}")
        return result

    async def results(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/jobs/{job_id}/results")
        return result

    async def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("POST", f"/v1/jobs/{job_id}/cancel")
        return result

    async def retry(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("POST", f"/v1/jobs/{job_id}/retry")
        return result

    async def events(self, job_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async with self._http.stream(
            "GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(30, read=None)
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            parser = _SseParser()
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
        async def poll() -> dict[str, Any]:
            while True:
                job = await self.get_job(job_id)
                if on_progress:
                    on_progress(job)
                if job["status"] in FINISHED:
                    return job
                await asyncio.sleep(poll_interval)

        async def follow() -> dict[str, Any]:
            try:
                async for event, data in self.events(job_id):
                    if (finished := _followed(event, data, on_progress)) is not None:
                        return finished
            except (httpx.HTTPError, ValueError):
                pass
            return await poll()

        try:
            async with asyncio.timeout(timeout):
                return await follow()
        except TimeoutError:
            raise TimeoutError(f"job {job_id} not finished after {timeout} s") from None
