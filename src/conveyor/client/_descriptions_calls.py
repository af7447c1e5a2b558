"""The vehicle-damage descriptions API (seed 000) described once: calls, errors, signing.

Both ``DescriptionsClient`` and ``AsyncDescriptionsClient`` send what these functions
build. Batch payloads carry the seed's body signature; the endpoints the seed left open
(listing, cancelling) are signed with the ``X-Client``/``X-Timestamp``/``X-Signature``
headers, computed when the request is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from conveyor.client._calls import Call
from conveyor.compat.descriptions.signing import sign_lots, signed_headers

VERSION = "1.0.0"
SYNC_TIMEOUT = 300.0  # the seed's clients wait this long for a sync answer
JOBS_PATH = "/api/v1/batch-jobs"
StatusCallback = Callable[[dict[str, Any]], None]


class DescriptionsError(Exception):
    """A non-success answer; ``status`` and the parsed ``body`` (if JSON) are kept."""

    def __init__(
        self, status: int, text: str, body: Any = None, *, message: str | None = None
    ) -> None:
        """The answer ``status`` with its ``text`` and parsed ``body``; ``message`` replaces
        the seed's ``API Error: <status> - <text>`` wording."""
        super().__init__(message or f"API Error: {status} - {text}")
        self.status = status
        self.body = body


class DescriptionsTimeout(DescriptionsError):
    """A sync request not done within the server's wait; the job goes on as ``job_id``."""

    def __init__(self, status: int, text: str, body: Any, job_id: str) -> None:
        """The late answer, with the ``job_id`` to follow the work by."""
        super().__init__(status, text, body)
        self.job_id = job_id


def make_lot(lot_id: str, images: Sequence[str], additional_info: str = "") -> dict[str, Any]:
    """A lot as the API takes it."""
    return {
        "lot_id": lot_id,
        "additional_info": additional_info,
        "images": [{"url": url} for url in images],
    }


def finished(status: Mapping[str, Any]) -> bool:
    """True when completed; raises for failed or cancelled, as the seed's client does."""
    if status["status"] == "completed":
        return True
    if status["status"] in ("failed", "cancelled"):
        reason = status.get("error_message", "Unknown error")
        message = f"Job {status['status']}: {reason}"
        raise DescriptionsError(200, message, dict(status), message=message)
    return False


def _error(response: httpx.Response) -> DescriptionsError:
    try:
        body = response.json()
    except ValueError:
        body = None
    job_id = body.get("job_id") if isinstance(body, dict) else None
    if response.status_code == 504 and isinstance(job_id, str):
        return DescriptionsTimeout(response.status_code, response.text, body, job_id)
    return DescriptionsError(response.status_code, response.text, body)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise DescriptionsError(response.status_code, response.text, body)
    return body


def _results_when_ready(response: httpx.Response) -> dict[str, Any] | None:
    return _json_object(response) if response.status_code == 200 else None


def _content(response: httpx.Response) -> bytes:
    return response.content


def _call(method: str, path: str, *expect: int, **options: Any) -> Call[dict[str, Any]]:
    return Call(method, path, _json_object, _error, options, frozenset(expect))


class Signer:
    """The shared key, and the name the server has it under (for signed headers)."""

    def __init__(self, shared_key: str, client_name: str | None) -> None:
        self.shared_key = shared_key
        self.client_name = client_name

    def lots(self, lots: list[dict[str, Any]]) -> str:
        return sign_lots(lots, self.shared_key)

    def headers(self, method: str, path: str, query: list[tuple[str, str]]) -> dict[str, str]:
        if not self.client_name:
            raise ValueError("client_name is required for list_jobs and cancel_job")
        return signed_headers(
            method, path, query, client=self.client_name, shared_key=self.shared_key
        )


def generate(
    signer: Signer, lots: list[dict[str, Any]], languages: Sequence[str]
) -> Call[dict[str, Any]]:
    payload = {
        "signature": signer.lots(lots),
        "version": VERSION,
        "languages": list(languages),
        "lots": lots,
    }
    return _call(
        "POST", "/api/v1/generate-descriptions", 200, 201, json=payload, timeout=SYNC_TIMEOUT
    )


def job_status(job_id: str) -> Call[dict[str, Any]]:
    return _call("GET", f"/api/v1/batch-status/{job_id}", 200)


def results(job_id: str) -> Call[dict[str, Any] | None]:
    """The results (200), or ``None`` while the job runs (202)."""
    path = f"/api/v1/batch-results/{job_id}"
    return Call("GET", path, _results_when_ready, _error, expect=frozenset({200, 202}))


def download(job_id: str) -> Call[bytes]:
    path = f"/api/v1/batch-results/{job_id}/download"
    return Call("GET", path, _content, _error, expect=frozenset({200}))


def list_jobs(signer: Signer, status: str | None, limit: int, offset: int) -> Call[dict[str, Any]]:
    query = [("limit", str(limit)), ("offset", str(offset))]
    if status:
        query.insert(0, ("status", status))
    headers = signer.headers("GET", JOBS_PATH, query)
    return _call("GET", JOBS_PATH, 200, params=tuple(query), headers=headers)


def cancel_job(signer: Signer, job_id: str) -> Call[dict[str, Any]]:
    path = f"{JOBS_PATH}/{job_id}/cancel"
    return _call("POST", path, 200, headers=signer.headers("POST", path, []))
