"""Webhooks: when a job finishes, POST it to the client's URL, signed, retried.

The delivery is a queue task enqueued in the transaction that finishes the job (an outbox:
the job can't finish without its webhook being due). Each attempt is recorded. The body is
signed like Stripe's: ``X-Conveyor-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``
with the server's webhook secret, so receivers can check origin and reject replays.
The URL passes the same SSRF policy as every other URL Conveyor fetches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.errors import ConveyorError
from conveyor.execution import repository
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import JobRow
from conveyor.jobs.schemas import ErrorReason
from conveyor.net.errors import FetchError
from conveyor.net.fetcher import SafeFetcher
from conveyor.queue import TaskContext

SIGNATURE_HEADER = "X-Conveyor-Signature"
# The same on every attempt of one announcement (``jobs/ending.py``): receivers dedupe by it.
DELIVERY_HEADER = "X-Conveyor-Delivery"


class WebhookNotDelivered(ConveyorError):
    """The receiver did not take the webhook; ``retryable`` says whether to try again."""

    code = "WEBHOOK_NOT_DELIVERED"


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_webhook(
    secret: str, header: str, body: bytes, *, now: float, tolerance: float = 300
) -> bool:
    """For receivers (and tests): check a signature header and its freshness."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign_webhook(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


class WebhookSender:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        items: ItemService,
        fetcher: SafeFetcher,
        *,
        secret: str,
        render_job: Callable[[JobRow, list[ErrorReason]], dict[str, object]],
    ) -> None:
        self.db = db
        self.items = items
        self.clock = clock
        self.fetcher = fetcher
        self.secret = secret
        self.render_job = render_job

    async def __call__(self, ctx: TaskContext) -> None:
        job_id = str(ctx.payload["job_id"])
        event = str(ctx.payload.get("event", "job.finished"))
        async with self.db.read() as conn:
            job = await self.items.get_job(conn, job_id)
            attempt = 1 + await repository.count_webhook_attempts(conn, job_id)
            reasons = await self.items.error_reasons(conn, job) if job is not None else []
        if job is None or not job.webhook_url:
            return
        body = json.dumps(
            {"event": event, "job": self.render_job(job, reasons)},
            separators=(",", ":"),
            default=str,
        ).encode()
        timestamp = int(self.clock.timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_webhook(self.secret, timestamp, body),
            "X-Conveyor-Event": event,
        }
        delivery_id = ctx.payload.get("delivery_id")
        if delivery_id:  # tasks queued before delivery ids existed have none
            headers[DELIVERY_HEADER] = str(delivery_id)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retryable = True
        try:
            answer = await self.fetcher.fetch(
                job.webhook_url, method="POST", data=body, headers=headers, max_bytes=64 * 1024
            )
            status = answer.status
        except FetchError as exc:
            error = exc.message
            status = getattr(exc, "http_status", None)
            retryable = exc.retryable
        async with self.db.write() as conn:
            await repository.record_webhook_attempt(
                conn,
                job_id=job_id,
                url=job.webhook_url,
                event=event,
                attempt=attempt,
                status_code=status,
                error=error,
                duration_ms=int((time.perf_counter() - started) * 1000),
                now=self.clock.now(),
            )
        if error is None:
            return
        # Refused by the SSRF policy or similar (no answer, not retryable): can't help.
        raise WebhookNotDelivered(
            f"webhook not delivered: {error}", retryable=retryable or status is not None
        )
