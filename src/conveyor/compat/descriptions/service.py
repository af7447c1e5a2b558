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

Methods take the caller's connection; the endpoints open the transactions (a sync request
writes its job, commits, waits outside any transaction, then reads the answer).

**Statuses.** The seed shows ``translating`` while lots are being translated: that is the
``vehicle-damage`` recipe's ``translating`` stage of a ``processing`` job (``seed_status``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

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
    seed_status,
    signed_lots,
    stage_filter,
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
from conveyor.jobs.models import (
    ITEM_COMPLETED,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JobRow,
)
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import CreatedJob, JobService
from conveyor.jobs.streams import JobStreams

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
class Submission:
    """A ``generate-descriptions`` body whose signature checked out."""

    signer: str
    signature: str
    request: DescriptionRequest

    @property
    def sync(self) -> bool:
        return len(self.request.lots) == 1


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished HTTP answer: the seed's endpoints pick their status per case."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class DescriptionsService:
    def __init__(
        self,
        jobs: JobService,
        streams: JobStreams,
        clients: ClientService,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.jobs = jobs
        self.streams = streams
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

    async def client(self, conn: AsyncConnection, name: str) -> Client:
        """The Conveyor client of a signing name (created on first use)."""
        client = self._clients.get(name)
        if client is None:
            client = await self.clients.ensure_client(conn, name)
            self._clients[name] = client
        return client

    def cached_client(self, name: str) -> Client | None:
        """The client of a signing name this process has seen already (no query)."""
        return self._clients.get(name)

    def authenticate_request(
        self,
        method: str,
        path: str,
        query: str,
        *,
        client: str | None,
        timestamp: str | None,
        signature: str | None,
    ) -> str:
        """The client name of a request signed with the ``X-Signature`` headers."""
        return verify_request(
            method,
            path,
            query,
            client=client,
            timestamp=timestamp,
            signature=signature,
            keys=self.keys,
            now=self.clock.timestamp,
        )

    # -- generate-descriptions ---------------------------------------------------------

    def read_submission(self, raw: bytes) -> Submission:
        """Parse a body, check its signature, then every field (in that order)."""
        body = read_json_object(raw)
        lots = signed_lots(body)
        signature = body.get("signature")
        signer = self.signer_of(lots, signature)
        request = parse_request(body, lots)
        if len(request.lots) > self.max_lots:
            raise InvalidRequest(
                f"at most {self.max_lots} lots per request; this one has {len(request.lots)}",
                code="TOO_MANY_LOTS",
            )
        return Submission(signer, str(signature).lower(), request)

    def accepted(self, job: JobRow, submission: Submission, seconds: float) -> Answer:
        """The 201 of a batch."""
        body = BatchAcceptedOut(
            job_id=job.id,
            creation_time=f"{seconds:.2f}s",
            lots_count=len(submission.request.lots),
        )
        return Answer(201, body.model_dump(), {"Location": f"/api/v1/batch-status/{job.id}"})

    async def job_for(
        self, conn: AsyncConnection, client: Client, submission: Submission
    ) -> JobRow:
        """The job that answers this submission: a new one, or the one it replays."""
        request, sync = submission.request, submission.sync
        if self.replay_window <= 0:
            return (await self._create(conn, client, request, None, sync=sync)).job
        signature = submission.signature
        period = int(self.clock.timestamp() // self.replay_window)
        earlier, sequence = await self._earlier_job(conn, client, signature, period)
        if earlier is not None and earlier.status not in (JOB_FAILED, JOB_CANCELLED):
            return self._replayed(earlier, request)
        if sequence >= MAX_RESUBMISSIONS:
            raise TooManyRequests(
                f"these lots were submitted {sequence} times in the last "
                f"{self.replay_window:g} s and failed each time; try again later",
                code="TOO_MANY_RESUBMISSIONS",
            )
        key = _replay_key(signature, period, sequence)
        created = await self._create(conn, client, request, key, sync=sync)
        # Not created: an identical request raced this one and made the job first.
        return created.job if created.created else self._replayed(created.job, request)

    async def _create(
        self,
        conn: AsyncConnection,
        client: Client,
        request: DescriptionRequest,
        key: str | None,
        *,
        sync: bool,
    ) -> CreatedJob:
        body = JobCreate(
            recipe=RECIPE,
            items=request.lots,
            options={"translation_budget": self.translation_budget} if sync else {},
            languages=request.languages,
            idempotency_key=key,
            wait=self.sync_wait if sync else None,
        )
        submission = self.jobs.prepare(body, source=SOURCE)
        return await self.jobs.create(conn, client, submission)

    async def _earlier_job(
        self, conn: AsyncConnection, client: Client, signature: str, period: int
    ) -> tuple[JobRow | None, int]:
        """The newest job these signed lots started within the window (if any), and the
        next free sequence number of the current period."""
        latest: JobRow | None = None
        sequence = 0
        for number in (period - 1, period):
            keys = [_replay_key(signature, number, n) for n in range(MAX_RESUBMISSIONS)]
            # Keys are used in order, so the jobs found are the first ``len(found)`` keys.
            found = await self.jobs.find_by_idempotency_keys(conn, client, keys)
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

    async def wait(self, job_id: str) -> JobRow | None:
        """The job once finished within ``sync_wait`` of the engine clock; None if not."""
        waiter = asyncio.create_task(self.streams.wait(job_id, self.sync_wait))
        timer = asyncio.create_task(self.clock.sleep(self.sync_wait))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
            await asyncio.gather(waiter, timer, return_exceptions=True)
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            return waiter.result()
        return None

    async def sync_answer(
        self, conn: AsyncConnection, job_id: str, request: DescriptionRequest
    ) -> Answer:
        """The answer to a one-lot request once its wait is over (504 while unfinished)."""
        job = await self.jobs.get(conn, None, job_id)
        if not job.finished:
            return Answer(
                504,
                error_body(
                    504,
                    "TIMEOUT",
                    f"the description did not finish within {self.sync_wait:g} s (timeout); "
                    f"the work goes on: read its result at /api/v1/batch-results/{job.id}",
                    job_id=job.id,
                    job_status=seed_status(job),
                ),
            )
        items, _ = await self.jobs.items(conn, job, limit=1)
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

    async def status(self, conn: AsyncConnection, job_id: str) -> BatchStatusOut:
        job = await self._job(conn, job_id)
        return BatchStatusOut.from_row(job, await self._error_message(conn, job))

    async def results(self, conn: AsyncConnection, job_id: str) -> Answer:
        """200 with every lot once the job is finished; 202 with its progress before."""
        job = await self._job(conn, job_id)
        if not job.finished:
            progress = BatchStatusOut.from_row(job).progress
            waiting = NotReadyOut(
                job_id=job.id,
                status=seed_status(job),
                message="the job is still running; results are not ready yet",
                progress=progress,
            )
            return Answer(202, waiting.model_dump())
        items, _ = await self.jobs.items(conn, job)
        results = BatchResultsOut(
            job_id=job.id,
            status=seed_status(job),
            completed_at=iso(job.finished_at),
            results=ResultsOut(lots=[LotResultOut.from_row(item) for item in items]),
        )
        return Answer(200, results.answer())

    async def list_jobs(
        self,
        conn: AsyncConnection,
        client: Client,
        *,
        status: str | None,
        limit: int,
        offset: int,
    ) -> BatchJobsOut:
        native, stage, other_stage = stage_filter(status)
        rows, more = await self.jobs.list_jobs(
            conn,
            client,
            status=native,
            stage=stage,
            not_stage=other_stage,
            limit=limit,
            offset=offset,
            source=SOURCE,
        )
        jobs = [BatchStatusOut.from_row(job, await self._error_message(conn, job)) for job in rows]
        return BatchJobsOut(jobs=jobs, limit=limit, offset=offset, has_more=more is not None)

    async def cancel(self, conn: AsyncConnection, client: Client, job_id: str) -> BatchStatusOut:
        job = await self._job(conn, job_id, client)
        if job.status in (JOB_COMPLETED, JOB_FAILED):
            raise Conflict(
                f"job {job.id} is already {job.status}; there is nothing to cancel",
                code="JOB_FINISHED",
            )
        cancelled = await self.jobs.cancel(conn, client, job.id)
        return BatchStatusOut.from_row(cancelled, await self._error_message(conn, cancelled))

    async def _job(
        self, conn: AsyncConnection, job_id: str, client: Client | None = None
    ) -> JobRow:
        job = await self.jobs.get(conn, client, job_id)
        if job.source != SOURCE:
            # Jobs of the other APIs are not this API's to show, by id or otherwise.
            raise NotFound(f"job {job_id} not found", code="JOB_NOT_FOUND")
        return job

    async def _error_message(self, conn: AsyncConnection, job: JobRow) -> str | None:
        if job.status == JOB_CANCELLED:
            return "the job was cancelled"
        if job.status != JOB_FAILED:
            return None
        items, _ = await self.jobs.items(conn, job, limit=3)
        reasons = [f"lot {i.key!r}: {i.error}" for i in items if i.error]
        noun = "lot" if job.total == 1 else "lots"
        summary = f"all {job.failed} {noun} failed"
        return f"{summary}: {'; '.join(reasons)}" if reasons else summary


def _replay_key(signature: str, period: int, sequence: int) -> str:
    return f"{SOURCE}:{signature}:{period}:{sequence}"
