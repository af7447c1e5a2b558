"""The seed-002 media API on top of jobs: words in, tasks out, files through signed links.

A batch is a ``word-media`` job with ``source="media"``, one item per word; its task id is
the job id. One word (``generate-image``, ``generate-audio``) is a job of one item and one
medium at sync priority, waited for up to ``media_sync_wait`` seconds of the engine clock:
done in time, the answer is the file; otherwise 202 with the task to poll like a batch.
Either way the work is durable and goes on without the client.

**Words.** A word completes when at least one medium it asked for was made; if the other
failed it is *partial* and still counts in ``completed_words`` (``partial_words`` says how
many). It fails when nothing could be made (``failed_words``). Retry re-runs failed and
partial words; a partial word's finished medium is a finished durable step, so only the
failed medium is made again. Cancelled words stay cancelled.

**Progress** is the share of words that have ended at least once, counted from the items
in one statement: words a retry reopened stay counted, so progress never moves back.

**Files.** Answers carry URLs a browser loads as they are (``<img src>``, ``<audio src>``,
no header needed): a signed, time-limited link to ``/api/media/files/{asset_id}/`` on
``CONVEYOR_PUBLIC_URL``, or on the origin the request came to when that is not set. The
expiry is rounded up to the hour, so a task polled every 2 s shows the same URLs and the
browser's cache keeps working. The owner may also fetch a file with their API key.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.links import AssetLinks
from conveyor.assets.models import Asset
from conveyor.assets.service import AssetService
from conveyor.clients.service import Client
from conveyor.compat.media.schemas import (
    MAX_LISTED,
    AcceptedOut,
    Kind,
    MediaFileOut,
    MediaRequest,
    TaskPageOut,
    TaskStatus,
    TaskSummaryOut,
    parse_batch,
    parse_single,
    read_json_object,
    refuse,
    task_answer,
)
from conveyor.config import Settings
from conveyor.core.clock import Clock
from conveyor.core.http import error_body
from conveyor.errors import Conflict, Forbidden, NotFound, ValidationFailed
from conveyor.jobs.models import ITEM_COMPLETED, JobRow
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService
from conveyor.jobs.streams import JobStreams
from conveyor.providers.base import Availability
from conveyor.providers.local import speech
from conveyor.providers.local.engine import EngineFailure, EngineUnavailable
from conveyor.providers.registry import ModelRegistry
from conveyor.recipes.word_media import WordMediaOptions, WordMediaRecipe, partial_media
from conveyor.storage import ObjectStream

SOURCE = "media"
RECIPE = "word-media"
FILES_PATH = "/api/media/files"
TASKS_PATH = "/api/media/tasks"
_HOUR = 3600


class MediaLinks(AssetLinks):
    """Signed links to ``/api/media/files/{id}/`` on any origin (the asset links' secret and
    signature, so the same credential reads the same bytes)."""

    def file_url(self, origin: str, asset_id: str) -> str:
        # Rounded up to the hour: links stay the same between polls, and live a full TTL.
        expires = math.ceil((self._clock.timestamp() + self.ttl) / _HOUR) * _HOUR
        signature = self._signature(asset_id, expires)
        return f"{origin}{FILES_PATH}/{asset_id}/?expires={expires}&sig={signature}"


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished HTTP answer: the single-word endpoints pick their status per case."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class MediaService:
    def __init__(
        self,
        jobs: JobService,
        streams: JobStreams,
        assets: AssetService,
        models: ModelRegistry,
        recipe: WordMediaRecipe,
        clock: Clock,
        settings: Settings,
        *,
        secret: str,
    ) -> None:
        self.jobs = jobs
        self.streams = streams
        self.assets = assets
        self.models = models
        self.recipe = recipe
        self.max_words = settings.max_items_per_job
        self.sync_wait = settings.media_sync_wait
        self.public_url = settings.public_url.rstrip("/")
        self.links = MediaLinks(secret, self.public_url, clock, ttl=settings.media_link_ttl)

    def origin(self, request_origin: str) -> str:
        """Where links point: the public URL if configured, else the request's origin."""
        return self.public_url or request_origin.rstrip("/")

    def link_maker(self, origin: str) -> Callable[[str], str]:
        return lambda asset_id: self.links.file_url(origin, asset_id)

    # -- requests ----------------------------------------------------------------------

    async def read_batch(self, raw: bytes) -> MediaRequest:
        request = parse_batch(read_json_object(raw), self.max_words)
        await self._check_languages(request, batch=True)
        return request

    async def read_single(self, raw: bytes, kind: Kind) -> MediaRequest:
        request = parse_single(read_json_object(raw), kind)
        self._check_chain(kind)
        await self._check_languages(request, batch=False)
        return request

    def _check_chain(self, kind: Kind) -> None:
        """A single word is refused at once when no model of its chain can run here (a
        batch is accepted: its other medium is still made, and each word says why)."""
        image, audio = self.recipe.chains(WordMediaOptions())
        reasons = []
        for model_id in image if kind == "image" else audio:
            found = self._availability(model_id)
            if found.available:
                return
            hint = f" ({found.enable_with})" if found.enable_with else ""
            reasons.append(f"{model_id}: {found.reason}{hint}")
        raise ValidationFailed(
            f"no {kind} model is available: " + "; ".join(reasons), code="MODEL_UNAVAILABLE"
        )

    async def _check_languages(self, request: MediaRequest, *, batch: bool) -> None:
        """Every word's language must be one its audio chain can speak (400 otherwise)."""
        wanted = [w for w in request.words if w.generate_audio]
        if not wanted:
            return
        # espeak-ng lists its voices once per process; not on the event loop.
        await asyncio.to_thread(_espeak_voices_or_none)
        options = WordMediaOptions(skip_existing=request.skip_existing)
        verdicts: dict[str, str | None] = {}
        problems: dict[str, Any] = {}
        for index, word in enumerate(request.words):
            if not word.generate_audio:
                continue
            if word.language not in verdicts:
                verdicts[word.language] = self.recipe.unspeakable(word, options, self._usable)
            problem = verdicts[word.language]
            if problem is not None:
                problems[str(index)] = {"language": [problem]}
        if not problems:
            return
        if not batch:
            raise refuse(problems["0"])
        many = f"{len(problems)} words are in languages no voice here speaks"
        raise refuse(
            {"words": dict(list(problems.items())[:MAX_LISTED])},
            many if len(problems) > 1 else None,
        )

    def _availability(self, model_id: str) -> Availability:
        adapter = self.models.get(model_id)
        return adapter.availability() if adapter is not None else Availability(False, "unknown")

    def _usable(self, model_id: str) -> bool:
        return self._availability(model_id).available

    async def create(
        self, conn: AsyncConnection, client: Client, request: MediaRequest, *, sync: bool
    ) -> JobRow:
        """Write the task: one job, one item per word, in the caller's transaction."""
        body = JobCreate(
            recipe=RECIPE,
            items=[word.model_dump(mode="json") for word in request.words],
            options={"skip_existing": request.skip_existing},
            wait=self.sync_wait if sync else None,
        )
        submission = self.jobs.prepare(body, source=SOURCE)
        return (await self.jobs.create(conn, client, submission)).job

    def accepted(self, job: JobRow) -> Answer:
        body = AcceptedOut(task_id=job.id, status="pending", progress=0)
        return Answer(201, body.model_dump(), {"Location": f"{TASKS_PATH}/{job.id}/"})

    async def wait(self, job_id: str) -> JobRow:
        """The job once finished, or as it is after ``media_sync_wait`` (engine clock)."""
        return await self.streams.wait(job_id, self.sync_wait)

    async def single_answer(
        self, conn: AsyncConnection, job_id: str, kind: Kind, origin: str
    ) -> Answer:
        """200 with the file when the word is done; 202 with the task while it is not."""
        job = await self.jobs.get(conn, None, job_id)
        if not job.finished:
            settled = (await self.jobs.settled(conn, [job.id])).get(job.id, 0)
            progress = TaskSummaryOut.from_row(job, settled).progress
            waiting = AcceptedOut(task_id=job.id, status=_status(job), progress=progress)
            return Answer(202, waiting.model_dump(), {"Location": f"{TASKS_PATH}/{job.id}/"})
        items, _ = await self.jobs.items(conn, job, limit=1)
        item = items[0]
        made = (item.output or {}).get(kind) or {}
        if item.status == ITEM_COMPLETED and made.get("status") == "completed":
            answer = MediaFileOut(
                word=item.key or "",
                language=str(item.input.get("language", "en")),
                kind=kind,
                url=self.links.file_url(origin, made["asset_id"]),
                asset_id=made["asset_id"],
                model=made.get("model"),
                reused=bool(made.get("reused")),
                mime_type=str(made.get("mime_type", "application/octet-stream")),
            )
            return Answer(200, answer.model_dump())
        if item.status == "cancelled":
            status, code, reason = 409, "TASK_CANCELLED", "the task was cancelled"
        else:
            status, code = 502, "GENERATION_FAILED"
            reason = item.error or made.get("error") or "failed"
        return Answer(
            status,
            error_body(
                status,
                code,
                f"the {kind} of {item.key!r} could not be made: {reason}",
                task_id=job.id,
            ),
        )

    # -- tasks -------------------------------------------------------------------------

    async def task(
        self, conn: AsyncConnection, client: Client, task_id: str, origin: str
    ) -> dict[str, Any]:
        job = await self._job(conn, client, task_id)
        return await self._answer(conn, job, origin)

    async def _answer(
        self, conn: AsyncConnection, job: JobRow, origin: str, **extra: Any
    ) -> dict[str, Any]:
        items, _ = await self.jobs.items(conn, job)
        return task_answer(job, items, self.link_maker(origin), **extra)

    async def list_tasks(
        self,
        conn: AsyncConnection,
        client: Client,
        *,
        status: TaskStatus | None,
        limit: int,
        offset: int,
        origin: str,
    ) -> TaskPageOut:
        """The client's tasks, newest first, a page at a time (``next``/``previous`` links)."""
        rows, more = await self.jobs.list_jobs(
            conn, client, status=status, limit=limit, offset=offset, source=SOURCE
        )
        active = [job.id for job in rows if not job.finished]
        settled = await self.jobs.settled(conn, active)

        def page(at: int) -> str:
            query = f"limit={limit}&offset={at}" + (f"&status={status}" if status else "")
            return f"{origin}{TASKS_PATH}/?{query}"

        return TaskPageOut(
            next=page(offset + limit) if more is not None else None,
            previous=page(max(0, offset - limit)) if offset > 0 else None,
            results=[
                TaskSummaryOut.from_row(job, job.total if job.finished else settled.get(job.id, 0))
                for job in rows
            ],
        )

    async def cancel(
        self, conn: AsyncConnection, client: Client, task_id: str, origin: str
    ) -> dict[str, Any]:
        """Stop the task: queued words are dropped, running ones stop at their next look;
        what is made is kept. A finished task is answered as it is."""
        job = await self._job(conn, client, task_id)
        cancelled = await self.jobs.cancel(conn, client, job.id)
        return await self._answer(conn, cancelled, origin)

    async def retry(
        self, conn: AsyncConnection, client: Client, task_id: str, origin: str
    ) -> dict[str, Any]:
        """Run the failed words again, and the failed medium of partial words."""
        job = await self._job(conn, client, task_id)
        items, _ = await self.jobs.items(conn, job)
        partial = [i.id for i in items if i.status == ITEM_COMPLETED and partial_media(i.output)]
        if job.failed == 0 and not partial:
            raise Conflict(
                f"task {task_id} has no failed or partial words to retry", code="NOTHING_TO_RETRY"
            )
        updated, retried = await self.jobs.retry(conn, client, job.id, completed_too=partial)
        return await self._answer(conn, updated, origin, retried_words=retried)

    async def _job(self, conn: AsyncConnection, client: Client, task_id: str) -> JobRow:
        try:
            job = await self.jobs.get(conn, client, task_id)
        except NotFound:
            job = None
        if job is None or job.source != SOURCE:
            # Another user's task, or a job of another API: not this caller's to see.
            raise NotFound(f"task {task_id} not found", code="TASK_NOT_FOUND")
        return job

    # -- files -------------------------------------------------------------------------

    async def file(
        self,
        conn: AsyncConnection,
        asset_id: str,
        *,
        expires: int | None,
        signature: str | None,
        client: Client | None,
    ) -> tuple[Asset, ObjectStream]:
        """A file by its signed link, or by its owner's key."""
        if expires is not None and signature is not None:
            if not self.links.valid(asset_id, expires, signature):
                raise Forbidden("invalid or expired link", code="INVALID_LINK")
            asset = await self.assets.get(conn, asset_id)
        elif client is not None:
            asset = await self.assets.get(conn, asset_id, client_id=client.id)
        else:
            raise Forbidden("a signed link or an API key is required", code="INVALID_LINK")
        return asset, await self.assets.open(asset)


def _status(job: JobRow) -> TaskStatus:
    return cast(TaskStatus, job.status)


def _espeak_voices_or_none() -> dict[str, str] | None:
    try:
        return speech.espeak_voices()
    except (EngineUnavailable, EngineFailure):
        return None  # no espeak-ng here: local speech is unavailable, the check knows it
