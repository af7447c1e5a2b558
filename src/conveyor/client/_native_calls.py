"""The native API (``/v1``) described once: each call, its error, and the rule of ``wait``.

Both ``Conveyor`` and ``AsyncConveyor`` send what these functions build, so a request can
never differ between the twins. ``WaitRule`` is ``wait`` without I/O: each client feeds it
what it saw (an event from the stream, a polled job) and sleeps as long as it says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Literal

import httpx

from conveyor.client._calls import Call

FINISHED = ("completed", "failed", "cancelled")
ProgressCallback = Callable[[dict[str, Any]], None]
"""Called by ``wait`` with the job's progress: ``job_id``, ``status``, ``total``,
``completed``, ``failed``, ``cancelled``, ``pending`` and ``percent``."""
DownloadFormat = Literal["json", "zip"]
_CONNECT_TIMEOUT = 30.0  # for an event stream's connect, write and pool waits


class ApiError(Exception):
    """An error answer: the HTTP ``status``, the server's ``code`` and ``message``, the body."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        """The error answer ``status`` with the server's ``code``, ``message`` and body."""
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


def api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return ApiError(response.status_code, str(body["error"]), str(body.get("message")), body)
    return ApiError(response.status_code, "HTTP_ERROR", response.text[:500], body)


def _json(response: httpx.Response) -> Any:
    return response.json()


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ApiError(response.status_code, "UNEXPECTED_ANSWER", "expected a JSON object", body)
    return body


def _content(response: httpx.Response) -> bytes:
    return response.content


def _nothing(response: httpx.Response) -> None:
    return None


def any_call(method: str, path: str, **options: Any) -> Call[Any]:
    """Any endpoint; ``options`` are ``httpx`` request arguments (params, json, ...)."""
    return Call(method, path, _json, api_error, options)


def _object_call(method: str, path: str, **options: Any) -> Call[dict[str, Any]]:
    return Call(method, path, _json_object, api_error, options)


def create_job(
    *,
    items: list[Any],
    recipe: str | None,
    model: str | None,
    options: dict[str, Any] | None,
    languages: list[str] | None,
    priority: int,
    webhook_url: str | None,
    idempotency_key: str | None,
    wait: float | None,
    dry_run: bool = False,
) -> Call[dict[str, Any]]:
    body: dict[str, Any] = {"items": items, "priority": priority}
    if dry_run:
        body["dry_run"] = True
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
    # The server may hold the answer for ``wait`` seconds: give the request that long too.
    return _object_call("POST", "/v1/jobs", json=body, timeout=(wait or 0) + 30)


def estimate_job(
    *,
    items: list[Any],
    recipe: str | None,
    model: str | None,
    options: dict[str, Any] | None,
    languages: list[str] | None,
) -> Call[dict[str, Any]]:
    """``create_job`` as a dry run: the server checks it, prices it and creates nothing."""
    return create_job(
        items=items,
        recipe=recipe,
        model=model,
        options=options,
        languages=languages,
        priority=0,
        webhook_url=None,
        idempotency_key=None,
        wait=None,
        dry_run=True,
    )


def get_job(job_id: str) -> Call[dict[str, Any]]:
    return _object_call("GET", f"/v1/jobs/{job_id}")


def list_jobs(status: str | None, limit: int, cursor: str | None) -> Call[dict[str, Any]]:
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    return _object_call("GET", "/v1/jobs", params=params)


def results(job_id: str) -> Call[dict[str, Any]]:
    return _object_call("GET", f"/v1/jobs/{job_id}/results")


def cancel(job_id: str) -> Call[dict[str, Any]]:
    return _object_call("POST", f"/v1/jobs/{job_id}/cancel")


def retry(job_id: str) -> Call[dict[str, Any]]:
    return _object_call("POST", f"/v1/jobs/{job_id}/retry")


def upload(filename: str, content: IO[bytes] | bytes) -> Call[dict[str, Any]]:
    """Multipart; ``content`` is an open file (streamed) or the bytes."""
    return _object_call("POST", "/v1/assets", files={"file": (filename, content)})


def asset_content(asset_id: str) -> Call[bytes]:
    return Call("GET", f"/v1/assets/{asset_id}/content", _content, api_error)


def download(job_id: str, format: DownloadFormat) -> Call[None]:
    """Streamed: the client writes the body to a file as it arrives."""
    return Call(
        "GET", f"/v1/jobs/{job_id}/download", _nothing, api_error, {"params": {"format": format}}
    )


def events(job_id: str, *, read_timeout: float | None = None) -> Call[None]:
    """Streamed: the client reads Server-Sent Events line by line. A stream may be quiet
    for long, so a read waits ``read_timeout`` seconds (forever by default)."""
    timeout = httpx.Timeout(_CONNECT_TIMEOUT, read=read_timeout)
    return Call("GET", f"/v1/jobs/{job_id}/events", _nothing, api_error, {"timeout": timeout})


class SseParser:
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


PROGRESS_COUNTS = ("total", "completed", "failed", "cancelled", "pending")
PROGRESS_KEYS = ("job_id", "status", *PROGRESS_COUNTS, "percent")
"""The keys of every dict ``wait`` passes to ``on_progress``, always all of them."""


def progress_report(job_id: str, status: str, counts: Mapping[str, Any]) -> dict[str, Any]:
    """The one shape ``on_progress`` gets, whichever answer it came from: the keys of
    ``PROGRESS_KEYS`` and no others (a server that sends more or fewer changes nothing)."""
    report: dict[str, Any] = {"job_id": job_id, "status": status}
    report.update({name: int(counts.get(name) or 0) for name in PROGRESS_COUNTS})
    total, done = report["total"], report["total"] - report["pending"]
    percent = counts.get("percent")
    report["percent"] = float(
        percent if percent is not None else (100 * done / total if total else 0)
    )
    return report


def job_progress(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job as ``wait`` reports it: its id, status and progress counts in one flat dict."""
    return progress_report(str(job["id"]), str(job["status"]), job.get("progress") or {})


class WaitRule:
    """``wait`` without I/O: what to request, what to make of each answer, when to stop.

    A client follows the job's event stream (``events_call``, each line to ``line``) and,
    if the stream breaks, polls the job (``polled``, sleeping ``pause()`` in between).
    Either way ``on_progress`` gets the same flat dict (``job_progress``) once for each
    change: the first snapshot, every change of status or counts, the finished job's. Past
    the deadline ``line`` and ``pause`` raise ``TimeoutError``; each read of the stream
    waits no longer than the time that was left when it was opened.
    """

    def __init__(
        self,
        job_id: str,
        *,
        timeout: float | None,
        poll_interval: float,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._on_progress = on_progress
        self._reported: dict[str, Any] | None = None
        self._parser = SseParser()

    def events_call(self) -> Call[None]:
        left = self._left()
        return events(self.job_id, read_timeout=None if left is None else max(0.0, left))

    def line(self, line: str) -> dict[str, Any] | None:
        """One line of the event stream; returns the job once it has finished."""
        if (left := self._left()) is not None and left <= 0:
            raise self.timed_out()
        parsed = self._parser.feed(line)
        return None if parsed is None else self.event(*parsed)

    def event(self, event: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """One event of the stream; returns the job once it has finished."""
        if event == "progress":
            self._report(progress_report(self.job_id, str(data.get("status", "")), data))
        elif event in ("job", "finished"):
            self._report(job_progress(data))
        return data if event == "finished" else None

    def polled(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """One polled job; returns it once it has finished."""
        self._report(job_progress(job))
        return job if job["status"] in FINISHED else None

    def pause(self) -> float:
        """Seconds until the next poll; ``TimeoutError`` once the time is up."""
        left = self._left()
        if left is None:
            return self.poll_interval
        if left <= 0:
            raise self.timed_out()
        return min(self.poll_interval, left)

    def timed_out(self) -> TimeoutError:
        return TimeoutError(f"job {self.job_id} not finished after {self.timeout} s")

    def _left(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _report(self, progress: dict[str, Any]) -> None:
        if self._on_progress is not None and progress != self._reported:
            self._reported = progress
            self._on_progress(progress)
