"""A scripted server for both SDKs behind ``httpx.MockTransport``, recording every request.

The transport is the SDK's own port, so a fake of it is fair here: the twins are run
against it call by call and must send byte-identical requests. Multipart boundaries are
random, and the signed headers carry the time: both are checked and then normalised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from conveyor.compat.descriptions.signing import sign_request

SHARED_KEY = "acme-shared-key-0123456789"
PROGRESS_KEYS = {
    "job_id",
    "status",
    "total",
    "completed",
    "failed",
    "cancelled",
    "pending",
    "percent",
}


def job(status: str, completed: int, *, job_id: str = "job-1") -> dict[str, Any]:
    total = 2
    counts = {"total": total, "completed": completed, "failed": 0, "cancelled": 0}
    counts |= {"pending": total - completed, "percent": 100.0 * completed / total}
    return {"id": job_id, "status": status, "recipe": "model", "progress": counts, "cost": 0.5}


def progress(status: str, completed: int) -> dict[str, Any]:
    """What ``wait`` must report for ``job(status, completed)``, whichever way it followed."""
    snapshot = job(status, completed)
    return {"job_id": snapshot["id"], "status": status, **snapshot["progress"]}


# The job as each poll sees it, and as its event stream tells it.
POLLED = [job("running", 0), job("running", 1), job("completed", 2)]
REPORTED = [progress("running", 0), progress("running", 1), progress("completed", 2)]


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


EVENT_STREAM = "".join(
    [
        _sse("job", POLLED[0]),
        ": ping\n\n",
        _sse("progress", progress("running", 1)),
        _sse("item.completed", {"job_id": "job-1", "item_id": "i-1", "key": "0", "seq": 0}),
        _sse("progress", progress("completed", 2)),  # the finished job repeats it: one report
        _sse("finished", POLLED[2]),
    ]
)


@dataclass(frozen=True)
class Recorded:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _normalised(request: httpx.Request) -> Recorded:
    headers = dict(request.headers)
    body = request.content
    match = re.search(r"boundary=([\w-]+)", headers.get("content-type", ""))
    if match:
        boundary = match.group(1)
        headers["content-type"] = headers["content-type"].replace(boundary, "BOUNDARY")
        body = body.replace(boundary.encode(), b"BOUNDARY")
    if "x-signature" in headers:
        # Signed at build time with the current second: check it, then set it aside.
        query = [(key, value) for key, value in request.url.params.multi_items()]
        expected = sign_request(
            request.method, request.url.path, query, headers["x-timestamp"], SHARED_KEY
        )
        assert headers.pop("x-signature") == expected
        assert headers.pop("x-timestamp").isdigit()
    return Recorded(request.method, str(request.url), tuple(sorted(headers.items())), body)


@dataclass
class FakeServer:
    """Both APIs, scripted; ``stream`` is how the event stream behaves."""

    stream: str = "events"  # "events", "broken" (connection drops) or "garbled" (bad JSON)
    requests: list[Recorded] = field(default_factory=list)
    polls: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(_normalised(request))
        method, path = request.method, request.url.path
        if path.startswith("/api/v1/"):
            return self._descriptions(request, method, path)
        return self._native(request, method, path)

    def _native(self, request: httpx.Request, method: str, path: str) -> httpx.Response:
        if path == "/v1/models":
            return httpx.Response(200, json=[{"id": "test/poll", "kind": "image"}])
        if path == "/v1/jobs" and method == "POST":
            return httpx.Response(201, json=job("queued", 0))
        if path == "/v1/jobs":
            return httpx.Response(200, json={"jobs": [job("completed", 2)], "next_cursor": None})
        if path == "/v1/jobs/missing":
            error = {"error": "JOB_NOT_FOUND", "message": "no such job", "code": 404}
            return httpx.Response(404, json=error)
        if path == "/v1/jobs/job-1":
            self.polls += 1
            return httpx.Response(200, json=POLLED[min(self.polls, len(POLLED)) - 1])
        if path == "/v1/jobs/job-stuck":
            return httpx.Response(200, json=job("running", 0, job_id="job-stuck"))
        if path.endswith("/events"):
            if self.stream == "broken":
                raise httpx.ReadError("connection dropped", request=request)
            text = EVENT_STREAM if self.stream == "events" else "event: job\ndata: {oops\n\n"
            return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
        if path == "/v1/jobs/job-1/results":
            return httpx.Response(200, json={"job_id": "job-1", "items": [{"status": "done"}]})
        if path == "/v1/jobs/job-1/cancel":
            return httpx.Response(200, json=job("cancelled", 1))
        if path == "/v1/jobs/job-1/retry":
            return httpx.Response(202, json=job("queued", 1))
        if path == "/v1/jobs/job-1/download":
            return httpx.Response(
                200, content=f"results as {request.url.params['format']}".encode()
            )
        if path == "/v1/assets":
            return httpx.Response(201, json={"id": "asset-1", "size": 5})
        if path == "/v1/assets/asset-1/content":
            return httpx.Response(200, content=b"\x89PNG bytes")
        return httpx.Response(500, text="not scripted")  # an unexpected call shows as HTTP_ERROR

    def _descriptions(self, request: httpx.Request, method: str, path: str) -> httpx.Response:
        if path == "/api/v1/generate-descriptions":
            lots = json.loads(request.content)["lots"]
            if lots[0]["lot_id"] == "slow":
                body = {"error": "TIMEOUT", "message": "still working", "job_id": "job-slow"}
                return httpx.Response(504, json=body)
            if len(lots) == 1:
                return httpx.Response(200, json={"lots": [{"lot_id": lots[0]["lot_id"]}]})
            return httpx.Response(201, json={"job_id": "batch-1", "status": "pending"})
        if path.startswith("/api/v1/batch-status/"):
            job_id = path.rsplit("/", 1)[1]
            seen = self.statuses[job_id] = self.statuses.get(job_id, 0) + 1
            if job_id == "batch-failed":
                body = {"job_id": job_id, "status": "failed", "error_message": "no images"}
                return httpx.Response(200, json=body)
            status = "completed" if seen >= 2 else "processing"
            return httpx.Response(200, json={"job_id": job_id, "status": status})
        if path == "/api/v1/batch-results/batch-running":
            return httpx.Response(202, json={"job_id": "batch-running", "status": "processing"})
        if path == "/api/v1/batch-results/batch-1":
            return httpx.Response(200, json={"job_id": "batch-1", "results": {"lots": []}})
        if path == "/api/v1/batch-results/batch-1/download":
            return httpx.Response(200, content=b'{"lots": []}\n')
        if path == "/api/v1/batch-jobs":
            return httpx.Response(200, json={"jobs": [], "total": 0})
        if path == "/api/v1/batch-jobs/batch-1/cancel":
            return httpx.Response(200, json={"job_id": "batch-1", "status": "cancelled"})
        if path == "/api/v1/batch-jobs/batch-done/cancel":
            return httpx.Response(409, json={"error": "JOB_FINISHED", "message": "finished"})
        return httpx.Response(500, text="not scripted")
