"""The seed-000 API on top of jobs: who signed, which job, how long to wait, what to answer.

A request is checked in the order that tells a client the most without telling a stranger
anything: the body's shape, then the signature (403), then every field (400). One lot is a
*sync* request: a job of one item with the ``translation_budget`` option, at sync priority,
waited for up to ``descriptions_sync_wait`` seconds on the engine clock; if that runs out the
answer is 504 with the ``job_id`` and the job goes on. Two or more lots are a batch: 201 at
once. Either way the work is a ``vehicle-damage`` job with ``source="descriptions"``, owned
by the Conveyor client whose name the signing key has in ``CONVEYOR_DESCRIPTIONS_CLIENTS``.

**Replays.** The seed's signature covers ``lots`` only, so a captured request can be sent
again with other ``languages``. Every job records the signature in its idempotency key
(``descriptions:<signature>:<period>:<n>``, the period being the clock divided by the replay
window). Within one window of the first job, the same signed lots are answered from that job
when they ask for languages it has (this is also how the seed's "retry with fewer languages
after a timeout" advice costs nothing), refused with 409 when they ask for others, and start
a new job only if the first failed or was cancelled. Details: docs/compat-descriptions.md.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from conveyor.clients.service import Client, ClientService
from conveyor.compat.descriptions.schemas import (
    BatchAcceptedOut,
    BatchJobsOut,
    BatchResultsOut,
    BatchStatusOut,
    DescriptionRequest,
    InvalidRequest,
    LotResultOut,
    NotReadyOut,
    ResultsOut,
    iso,
    parse_request,
    read_json_object,
    signed_lots,
)
from conveyor.compat.descriptions.signing import (
    signature_format_problem,
    verify_request,
    verify_signature,
)
from conveyor.config import Settings
from conveyor.core.clock import Clock
from conveyor.core.http import error_body
from conveyor.errors import Conflict, Forbidden, NotFound, TooManyRequests
from conveyor.jobs.models import ITEM_COMPLETED, JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED
from conveyor.jobs.repository import JobRow
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import CreatedJob, JobService

SOURCE = "descriptions"
RECIPE = "vehicle-damage"
# New jobs for the same signed lots within one replay window, when the earlier ones failed.
MAX_RESUBMISSIONS = 5
HOW_TO_SIGN = (
    "sign json.dumps(lots, separators=(',', ':'), sort_keys=True) with HMAC-SHA256 and your "
    'shared key, and send the hex digest without a "sha256=" prefix'
)


class SignatureRejected(Forbidden):
    code = "INVALID_SIGNATURE"


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished HTTP answer: the seed's endpoints pick their status per case."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class DescriptionsService:
    def __init__(
        self, jobs: JobService, clients: ClientService, clock: Clock, settings: Settings
    ) -> None:
        self.jobs = jobs
        self.clients = clients
        self.clock = clock
        self.keys = {n: k.get_secret_value() for n, k in settings.descriptions_clients.items()}
        self.max_lots = settings.max_items_per_job
        self.translation_budget = settings.descriptions_translation_budget
        self.sync_wait = settings.descriptions_sync_wait
        self.replay_window = settings.descriptions_replay_window
        self._clients: dict[str, Client] = {}

    # -- who is calling ----------------------------------------------------------------

    def signer_of(self, lots: list[Any], signature: object) -> str:
        """The client name whose shared key signed ``lots``; ``SignatureRejected`` if none."""
        if problem := signature_format_problem(signature):
            raise SignatureRejected(f"invalid signature: {problem}")
        if not self.keys:
            raise SignatureRejected(
                "no client keys are configured on this server (CONVEYOR_DESCRIPTIONS_CLIENTS)"
            )
        name = verify_signature(lots, signature, self.keys)
        if name is None:
            raise SignatureRejected(f"the signature does not match these lots; {HOW_TO_SIGN}")
        return name

    async def client(self, name: str) -> Client:
        """The Conveyor client of a signing name (created on first use)."""
        client = self._clients.get(name)
        if client is None:
            async with self.clients.db.write() as conn:
                client = await self.clients.ensure_client(conn, name)
            self._clients[name] = client
        return client

    async def authenticate_request(
        self,
        method: str,
        path: str,
        query: str,
        *,
        client: str | None,
        timestamp: str | None,
        signature: str | None,
    ) -> Client:
        """The client of a management request signed with the ``X-Signature`` headers."""
        name = verify_request(
            method,
            path,
            query,
            client=client,
            timestamp=timestamp,
            signature=signature,
            keys=self.keys,
            now=self.clock.timestamp,
        )
        return await self.client(name)

    # -- generate-descriptions ---------------------------------------------------------

    async def submit(self, raw: bytes) -> Answer:
        started = time.perf_counter()
        body = read_json_object(raw)
        lots = signed_lots(body)
        signature = body.get("signature")
        client = await self.client(self.signer_of(lots, signature))
        request = parse_request(body, lots)
        if len(request.lots) > self.max_lots:
            raise InvalidRequest(
                f"at most {self.max_lots} lots per request; this one has {len(request.lots)}",
                code="TOO_MANY_LOTS",
            )
        sync = len(request.lots) == 1
        job = await self._job_for(client, request, str(signature).lower(), sync=sync)
        if not sync:
            accepted = BatchAcceptedOut(
                job_id=job.id,
                creation_time=f"{time.perf_counter() - started:.2f}s",
                lots_count=len(request.lots),
            )
            return Answer(
                201, accepted.model_dump(), {"Location": f"/api/v1/batch-status/{job.id}"}
            )
        return await self._sync_answer(await self._wait(job.id), request)

    async def _job_for(
        self, client: Client, request: DescriptionRequest, signature: str, *, sync: bool
    ) -> JobRow:
        if self.replay_window <= 0:
            return (await self._create(client, request, None, sync=sync)).job
        period = int(self.clock.timestamp() // self.replay_window)
        earlier, sequence = await self._earlier_job(client, signature, period)
        if earlier is not None and earlier.status not in (JOB_FAILED, JOB_CANCELLED):
            return self._replayed(earlier, request)
        if sequence >= MAX_RESUBMISSIONS:
            raise TooManyRequests(
                f"these lots were submitted {sequence} times in the last "
                f"{self.replay_window:g} s and failed each time; try again later",
                code="TOO_MANY_RESUBMISSIONS",
            )
        key = _replay_key(signature, period, sequence)
        created = await self._create(client, request, key, sync=sync)
        # Not created: an identical request raced this one and made the job first.
        return created.job if created.created else self._replayed(created.job, request)

    async def _create(
        self, client: Client, request: DescriptionRequest, key: str | None, *, sync: bool
    ) -> CreatedJob:
        body = JobCreate(
            recipe=RECIPE,
            items=request.lots,
            options={"translation_budget": self.translation_budget} if sync else {},
            languages=request.languages,
            idempotency_key=key,
            wait=self.sync_wait if sync else None,
        )
        submission = await self.jobs.prepare(client, body, source=SOURCE)
        return await self.jobs.create(client, submission)

    async def _earlier_job(
        self, client: Client, signature: str, period: int
    ) -> tuple[JobRow | None, int]:
        """The newest job these signed lots started within the window (if any), and the
        next free sequence number of the current period."""
        latest: JobRow | None = None
        sequence = 0
        for number in (period - 1, period):
            keys = [_replay_key(signature, number, n) for n in range(MAX_RESUBMISSIONS)]
            # Keys are used in order, so the jobs found are the first ``len(found)`` keys.
            found = await self.jobs.find_by_idempotency_keys(client, keys)
            sequence = len(found)
            if found:
                latest = found[-1]
        if latest is not None:
            age = (self.clock.now() - latest.created_at).total_seconds()
            if age >= self.replay_window:
                latest = None
        return latest, sequence

    def _replayed(self, job: JobRow, request: DescriptionRequest) -> JobRow:
        have = job.languages or ["en"]
        missing = [code for code in request.languages if code not in have]
        if not missing:
            return job
        until = job.created_at + timedelta(seconds=self.replay_window)
        raise Conflict(
            f"these signed lots already started job {job.id} with languages "
            f"{', '.join(have)}; the seed's signature does not cover 'languages', so the same "
            f"lots cannot ask for {', '.join(missing)} until {iso(until)}. Ask for every "
            "language in one request, or read that job's results",
            code="REPLAYED_SIGNATURE",
            details={"job_id": job.id, "languages": have},
        )

    async def _wait(self, job_id: str) -> JobRow:
        """The job once finished, or as it is when ``sync_wait`` of the engine clock passed."""
        waiter = asyncio.create_task(self.jobs.wait(job_id, self.sync_wait))
        timer = asyncio.create_task(self.clock.sleep(self.sync_wait))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
            await asyncio.gather(waiter, timer, return_exceptions=True)
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            return waiter.result()
        return await self.jobs.get(None, job_id)

    async def _sync_answer(self, job: JobRow, request: DescriptionRequest) -> Answer:
        if not job.finished:
            return Answer(
                504,
                error_body(
                    504,
                    "TIMEOUT",
                    f"the description did not finish within {self.sync_wait:g} s (timeout); "
                    f"the work goes on: read its result at /api/v1/batch-results/{job.id}",
                    job_id=job.id,
                    job_status=job.status,
                ),
            )
        items, _ = await self.jobs.items(job, limit=1)
        item = items[0]
        if item.status != ITEM_COMPLETED:
            status, code = (
                (409, "JOB_CANCELLED")
                if item.status == "cancelled"
                else (422, "LOT_FAILED")
                if item.error_code == "NO_USABLE_IMAGES"
                else (502, "GENERATION_FAILED")
            )
            reason = item.error or "it was cancelled"
            return Answer(
                status,
                error_body(
                    status,
                    code,
                    f"lot {item.key!r} failed: {reason}",
                    job_id=job.id,
                    lot_id=item.key,
                ),
            )
        output = item.output or {}
        by_language: dict[str, str] = output.get("language_warnings") or {}
        fallbacks = set(by_language.values())
        warnings = [w for w in output.get("warnings") or [] if w not in fallbacks]
        warnings += [by_language[code] for code in request.languages if code in by_language]
        if len(request.languages) > 2:
            warnings.insert(
                0, f"processing {len(request.languages)} languages may increase response time"
            )
        made = {d["language"]: d for d in output.get("descriptions") or []}
        return Answer(
            200,
            {
                "version": request.version,
                "lots": [
                    {
                        "lot_id": item.key,
                        "descriptions": [made[c] for c in request.languages if c in made],
                    }
                ],
                "warnings": warnings,
            },
        )

    # -- reading -----------------------------------------------------------------------

    async def status(self, job_id: str) -> BatchStatusOut:
        job = await self._job(job_id)
        return BatchStatusOut.from_row(job, await self._error_message(job))

    async def results(self, job_id: str) -> Answer:
        """200 with every lot once the job is finished; 202 with its progress before."""
        job = await self._job(job_id)
        if not job.finished:
            progress = BatchStatusOut.from_row(job).progress
            waiting = NotReadyOut(
                job_id=job.id,
                status=job.status,
                message="the job is still running; results are not ready yet",
                progress=progress,
            )
            return Answer(202, waiting.model_dump())
        items, _ = await self.jobs.items(job)
        results = BatchResultsOut(
            job_id=job.id,
            status=job.status,
            completed_at=iso(job.finished_at),
            results=ResultsOut(lots=[LotResultOut.from_row(item) for item in items]),
        )
        return Answer(200, results.answer())

    async def list_jobs(
        self, client: Client, *, status: str | None, limit: int, offset: int
    ) -> BatchJobsOut:
        rows, more = await self.jobs.list_jobs(
            client, status=status, limit=limit, offset=offset, source=SOURCE
        )
        jobs = [BatchStatusOut.from_row(job, await self._error_message(job)) for job in rows]
        return BatchJobsOut(jobs=jobs, limit=limit, offset=offset, has_more=more is not None)

    async def cancel(self, client: Client, job_id: str) -> BatchStatusOut:
        job = await self._job(job_id, client)
        if job.status in (JOB_COMPLETED, JOB_FAILED):
            raise Conflict(
                f"job {job.id} is already {job.status}; there is nothing to cancel",
                code="JOB_FINISHED",
            )
        cancelled = await self.jobs.cancel(client, job.id)
        return BatchStatusOut.from_row(cancelled, await self._error_message(cancelled))

    async def _job(self, job_id: str, client: Client | None = None) -> JobRow:
        job = await self.jobs.get(client, job_id)
        if job.source != SOURCE:
            # Jobs of the other APIs are not this API's to show, by id or otherwise.
            raise NotFound(f"job {job_id} not found", code="JOB_NOT_FOUND")
        return job

    async def _error_message(self, job: JobRow) -> str | None:
        if job.status == JOB_CANCELLED:
            return "the job was cancelled"
        if job.status != JOB_FAILED:
            return None
        items, _ = await self.jobs.items(job, limit=3)
        reasons = [f"lot {i.key!r}: {i.error}" for i in items if i.error]
        noun = "lot" if job.total == 1 else "lots"
        summary = f"all {job.failed} {noun} failed"
        return f"{summary}: {'; '.join(reasons)}" if reasons else summary


def _replay_key(signature: str, period: int, sequence: int) -> str:
    return f"{SOURCE}:{signature}:{period}:{sequence}"
