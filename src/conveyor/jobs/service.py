"""Creating, reading, cancelling and retrying jobs.

Every method takes the caller's connection: the edge (a route, a task handler, a CLI command)
opens the transaction and commits it. Creating a job writes the job, its items and one queue
task per item in the caller's one transaction: a job is never visible without its work
queued, and a refused request leaves nothing behind. The same ``idempotency_key`` from the
same client returns the existing job instead of a second one, also when two requests race
(the unique constraint decides, inside a savepoint).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.service import AssetService
from conveyor.clients.service import Client
from conveyor.content.languages import normalize_languages
from conveyor.core.clock import Clock
from conveyor.core.http import nul_refusal
from conveyor.core.ids import new_id
from conveyor.errors import BadRequest, Conflict, NotFound, ValidationFailed
from conveyor.jobs import repository as repo
from conveyor.jobs.ending import job_ended
from conveyor.jobs.estimates import JobEstimate, estimate
from conveyor.jobs.events import EventBus, JobEvent
from conveyor.jobs.inputs import (
    FileRef,
    InputFault,
    UrlVetter,
    check_model_items,
    input_rules,
    invalid_inputs,
    vet_urls,
)
from conveyor.jobs.models import ITEM_PENDING, JOB_ACTIVE, JOB_FAILED, JOB_PENDING, ItemRow, JobRow
from conveyor.jobs.schemas import (
    REASONS_SHOWN,
    ErrorReason,
    JobCreate,
    JobOut,
    decode_cursor,
    encode_cursor,
    progress_event,
)
from conveyor.jobs.tasks import run_item_tasks
from conveyor.net.destinations import check_callback_url
from conveyor.net.fetcher import SafeFetcher
from conveyor.net.policy import UrlPolicy
from conveyor.providers.registry import ModelRegistry
from conveyor.queue import QueueRepository
from conveyor.recipes.base import Recipe, RecipeRegistry
from conveyor.recipes.single_model import ModelItem, SingleModelRecipe

# Requests that wait for their answer go ahead of batch work.
SYNC_PRIORITY_BOOST = 50


@dataclass(frozen=True, slots=True)
class CreatedJob:
    job: JobRow
    created: bool


@dataclass(frozen=True, slots=True)
class JobSubmission:
    """A validated job, ready to be written; compatibility APIs build these directly."""

    recipe: str
    model: str | None
    items: list[BaseModel]
    item_payloads: list[dict[str, Any]]
    keys: list[str | None]
    options: dict[str, Any]
    languages: list[str] | None
    priority: int
    webhook_url: str | None
    idempotency_key: str | None
    source: str = "v1"
    # Stored files the items name; ``create`` checks they are the client's.
    asset_ids: tuple[str, ...] = ()
    # Where the items name files (a ``model`` job's inputs): located faults, URL checks.
    files: tuple[FileRef, ...] = ()


class JobService:
    def __init__(
        self,
        clock: Clock,
        queue: QueueRepository,
        recipes: RecipeRegistry,
        models: ModelRegistry,
        assets: AssetService,
        events: EventBus,
        *,
        max_items: int,
        simulated: bool = False,
        urls: UrlVetter | None = None,
        url_policy: UrlPolicy | None = None,
        webhook_fetcher: SafeFetcher | None = None,
    ) -> None:
        self.clock = clock
        self.queue = queue
        self.recipes = recipes
        self.models = models
        self.assets = assets
        self.events = events
        self.max_items = max_items
        self.simulated = simulated
        # URLs handed on to remote models: their form here, their hosts' addresses in
        # ``vet`` (the fetcher's policy, so what a provider gets is what we would fetch).
        self.urls = urls
        self.url_policy = url_policy or UrlPolicy()
        self.webhook_fetcher = webhook_fetcher

    # -- creating ----------------------------------------------------------------------

    def prepare(self, body: JobCreate, *, source: str = "v1") -> JobSubmission:
        """Validate a request (before any transaction opens: a big job takes a while)."""
        if (where := _nul_in(body.model_dump(mode="json"))) is not None:
            raise nul_refusal(where)
        if len(body.items) > self.max_items:
            raise ValidationFailed(
                f"a job may have at most {self.max_items} items; this one has {len(body.items)}"
            )
        recipe_name = body.recipe or "model"
        recipe = self.recipes.get(recipe_name)
        if recipe is None:
            known = ", ".join(sorted(r.name for r in self.recipes.all()))
            raise ValidationFailed(f"unknown recipe {recipe_name!r}; known recipes: {known}")
        raw_options = dict(body.options)
        if body.model is not None:
            raw_options["model"] = body.model
        options = recipe.parse_options(raw_options)
        self._check_models(recipe.models(options))
        parsed = recipe.parse_items(body.items)
        files = self._check_inputs(recipe, recipe.models(options), parsed, source=source)
        asset_ids = sorted({a for item in parsed for a in recipe.file_inputs(item)})
        languages = normalize_languages(body.languages) if body.languages is not None else None
        return JobSubmission(
            recipe=recipe.name,
            model=body.model,
            items=parsed,
            item_payloads=[item.model_dump(mode="json") for item in parsed],
            keys=[recipe.item_key(item) for item in parsed],
            options=options.model_dump(mode="json"),
            languages=languages,
            priority=body.priority + (SYNC_PRIORITY_BOOST if body.wait else 0),
            webhook_url=body.webhook_url,
            idempotency_key=body.idempotency_key,
            source=source,
            asset_ids=tuple(asset_ids),
            files=files,
        )

    def _check_inputs(
        self, recipe: Recipe, chain: list[str], items: list[BaseModel], *, source: str
    ) -> tuple[FileRef, ...]:
        """A ``model`` job's items against its models' declared inputs (``jobs.inputs``)."""
        if not isinstance(recipe, SingleModelRecipe):
            return ()
        adapters = [self.models.get(model_id) for model_id in chain]
        rules = [input_rules(a) if a is not None else None for a in adapters]
        checked = check_model_items(
            # The model recipe's items are the inputs as parsed JSON already.
            [item.root if isinstance(item, ModelItem) else item.model_dump() for item in items],
            rules,
            self.url_policy,
            # The compatibility APIs pass their seeds' extra fields on, as the seeds did.
            reject_unknown=source == "v1",
        )
        if checked.faults:
            raise invalid_inputs(checked.faults)
        return tuple(checked.files)

    async def vet(self, submission: JobSubmission) -> None:
        """Check the hosts of the URLs a job hands on (their addresses, as a fetch would);
        slow I/O, so before the transaction opens."""
        if self.urls is None or not submission.files:
            return
        faults = await vet_urls(submission.files, self.urls)
        if faults:
            raise invalid_inputs(faults)

    async def check_webhook(self, submission: JobSubmission) -> None:
        """Refuse (422) a webhook URL its delivery would refuse; before any transaction."""
        if submission.webhook_url and self.webhook_fetcher is not None:
            await check_callback_url(
                self.webhook_fetcher, submission.webhook_url, field="webhook_url"
            )

    def _check_models(self, model_ids: list[str]) -> None:
        unknown = [m for m in model_ids if m not in self.models]
        if unknown:
            known = [a.model_id for a in self.models.all()]
            guesses = {m: difflib.get_close_matches(m, known, n=1) for m in unknown}
            hints = [
                f"{m!r} (did you mean {g[0]!r}?)" if g else repr(m) for m, g in guesses.items()
            ]
            raise ValidationFailed(
                f"unknown model(s): {', '.join(hints)}; see GET /v1/models",
                code="UNKNOWN_MODEL",
                details={"suggestions": {m: g[0] for m, g in guesses.items() if g}},
            )
        if not model_ids:
            return
        reasons = []
        for model_id in model_ids:
            availability = self.models.get(model_id).availability()  # type: ignore[union-attr]
            if availability.available:
                return
            hint = f" ({availability.enable_with})" if availability.enable_with else ""
            reasons.append(f"{model_id}: {availability.reason}{hint}")
        raise ValidationFailed(
            "no model of this job is available: " + "; ".join(reasons), code="MODEL_UNAVAILABLE"
        )

    async def _check_assets(
        self, conn: AsyncConnection, client: Client, submission: JobSubmission
    ) -> None:
        """Every file an item names must be one of the client's assets."""
        asset_ids = list(submission.asset_ids)
        if not asset_ids:
            return
        found = await self.assets.get_many(conn, asset_ids)
        missing = {a for a in asset_ids if a not in found or found[a].client_id != client.id}
        if not missing:
            return
        located = [
            InputFault(ref.loc, f"unknown asset {ref.asset_id!r}")
            for ref in submission.files
            if ref.asset_id in missing
        ]
        if located:
            raise invalid_inputs(located, code="UNKNOWN_ASSET")
        raise ValidationFailed(
            f"unknown asset(s): {', '.join(sorted(missing)[:10])}", code="UNKNOWN_ASSET"
        )

    async def estimate(
        self, conn: AsyncConnection, client: Client, submission: JobSubmission
    ) -> JobEstimate:
        """What the job would cost and call (``dry_run``); checks as ``create`` does, writes
        nothing."""
        await self._check_assets(conn, client, submission)
        recipe = self.recipes.get(submission.recipe)
        assert recipe is not None  # ``prepare`` found it
        single = isinstance(recipe, SingleModelRecipe)
        return estimate(
            self.models,
            recipe=submission.recipe,
            model=submission.model,
            chain=recipe.models(recipe.parse_options(submission.options)),
            item_inputs=submission.item_payloads if single else None,
            count=len(submission.item_payloads),
        )

    async def find_by_idempotency_keys(
        self, conn: AsyncConnection, client: Client, keys: list[str]
    ) -> list[JobRow]:
        """The client's jobs created with any of ``keys``, in the order of ``keys``."""
        found = await repo.find_jobs_by_idempotency_keys(conn, client.id, keys)
        return [found[key] for key in keys if key in found]

    async def create(
        self, conn: AsyncConnection, client: Client, submission: JobSubmission
    ) -> CreatedJob:
        """Write the job, its items and their tasks; or return the job this key made."""
        key = submission.idempotency_key
        if key is not None:
            existing = await repo.find_job_by_idempotency_key(conn, client.id, key)
            if existing is not None:
                return CreatedJob(existing, created=False)
        await self._check_assets(conn, client, submission)
        try:
            async with conn.begin_nested():
                job = await self._insert(conn, client, submission)
        except IntegrityError:
            # Two requests with one key raced and the other one committed first.
            existing = (
                await repo.find_job_by_idempotency_key(conn, client.id, key)
                if key is not None
                else None
            )
            if existing is None:
                raise
            return CreatedJob(existing, created=False)
        return CreatedJob(job, created=True)

    async def _insert(self, conn: AsyncConnection, client: Client, s: JobSubmission) -> JobRow:
        now = self.clock.now()
        job = JobRow(
            id=new_id(),
            client_id=client.id,
            recipe=s.recipe,
            model=s.model,
            status=JOB_PENDING,
            stage=None,
            priority=s.priority,
            options=s.options,
            languages=s.languages,
            idempotency_key=s.idempotency_key,
            webhook_url=s.webhook_url,
            total=len(s.item_payloads),
            completed=0,
            failed=0,
            cancelled=0,
            cost=0.0,
            error_message=None,
            source=s.source,
            simulated=self.simulated,
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None,
        )
        await repo.insert_job(conn, job)
        item_ids = [new_id() for _ in s.item_payloads]
        await repo.insert_items(
            conn,
            [
                {
                    "id": item_id,
                    "job_id": job.id,
                    "seq": seq,
                    "key": key,
                    "status": ITEM_PENDING,
                    "stage": None,
                    "input": payload,
                    "runs": 0,
                    "cost": 0.0,
                    "created_at": now,
                    "updated_at": now,
                }
                for seq, (item_id, key, payload) in enumerate(
                    zip(item_ids, s.keys, s.item_payloads, strict=True)
                )
            ],
        )
        await self.queue.enqueue(conn, run_item_tasks(job.id, client.id, item_ids, s.priority))
        return job

    # -- reading -----------------------------------------------------------------------

    async def get(self, conn: AsyncConnection, client: Client | None, job_id: str) -> JobRow:
        """The job; ``client=None`` reads by id alone (the id is the capability)."""
        job = await repo.get_job(conn, job_id)
        if job is None or (client is not None and job.client_id != client.id):
            raise NotFound(f"job {job_id} not found", code="JOB_NOT_FOUND")
        return job

    async def list_jobs(
        self,
        conn: AsyncConnection,
        client: Client,
        *,
        status: str | None,
        limit: int,
        cursor: str | None = None,
        offset: int = 0,
        source: str | None = None,
        stage: str | None = None,
        not_stage: str | None = None,
    ) -> tuple[list[JobRow], str | None]:
        """The client's jobs, newest first, and the cursor of the next page."""
        before: tuple[datetime, str] | None = None
        if cursor:
            before = _job_cursor(cursor)
        rows = await repo.list_jobs(
            conn,
            client_id=client.id,
            status=status,
            limit=limit + 1,
            before=before,
            offset=offset,
            source=source,
            stage=stage,
            not_stage=not_stage,
        )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = (
            encode_cursor({"t": page[-1].created_at.isoformat(), "id": page[-1].id})
            if more and page
            else None
        )
        return page, next_cursor

    async def items(
        self,
        conn: AsyncConnection,
        job: JobRow,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> tuple[list[ItemRow], str | None]:
        """The job's items in order (a page of them with ``limit``) and the next cursor."""
        after = -1
        if cursor:
            raw = decode_cursor(cursor)
            if not isinstance(raw.get("seq"), int):
                raise BadRequest("invalid cursor", code="INVALID_CURSOR")
            after = raw["seq"]
        rows = await repo.list_items(
            conn, job.id, after_seq=after, limit=None if limit is None else limit + 1
        )
        if limit is None:
            return rows, None
        page, more = rows[:limit], len(rows) > limit
        return page, encode_cursor({"seq": page[-1].seq}) if more and page else None

    async def items_of_jobs(
        self, conn: AsyncConnection, job_ids: list[str]
    ) -> dict[str, list[ItemRow]]:
        """The items of each of these jobs, in order (one query for all)."""
        found: dict[str, list[ItemRow]] = {}
        for item in await repo.items_of_jobs(conn, job_ids):
            found.setdefault(item.job_id, []).append(item)
        return found

    async def error_reasons(
        self, conn: AsyncConnection, job_rows: Sequence[JobRow], *, limit: int = REASONS_SHOWN
    ) -> dict[str, list[ErrorReason]]:
        """The most common errors of each job's failed items (jobs with none are left out)."""
        wanted = [job.id for job in job_rows if job.failed > 0]
        found = await repo.error_reasons(conn, wanted)
        return {
            job_id: [ErrorReason(code=c, message=m, count=n) for c, m, n in reasons[:limit]]
            for job_id, reasons in found.items()
        }

    async def shown(self, conn: AsyncConnection, job: JobRow) -> JobOut:
        """The job as the API shows it, with its ``error_summary``."""
        reasons = await self.error_reasons(conn, [job])
        return JobOut.from_row(job, reasons.get(job.id))

    async def latest_task_ids(self, conn: AsyncConnection, item_ids: list[str]) -> dict[str, str]:
        """Each item's latest provider task id (``external_task_id`` of its step runs)."""
        return await repo.latest_task_ids(conn, item_ids)

    async def settled(self, conn: AsyncConnection, job_ids: Sequence[str]) -> dict[str, int]:
        """How many items of each job have ended at least once (a retry does not undo it)."""
        return await repo.settled_counts(conn, job_ids)

    async def items_finished_since(
        self, conn: AsyncConnection, job: JobRow, since: datetime
    ) -> list[ItemRow]:
        return await repo.items_finished_since(conn, job.id, since)

    # -- changing ----------------------------------------------------------------------

    async def cancel(self, conn: AsyncConnection, client: Client | None, job_id: str) -> JobRow:
        """Cancel the job: queued work is dropped now, running steps stop at their next look.

        What finished stays; the job's webhook is sent as for any other end."""
        job = await self.get(conn, client, job_id)
        if job.status not in JOB_ACTIVE:
            return job
        ended = await repo.cancel_job(conn, job, self.clock.now())
        await self.queue.cancel_group(conn, job.id)
        updated = await self.get(conn, None, job.id)
        if not ended:
            # Its last item finished between our read and our update (another transaction
            # ended the job and announced it): nothing of ours to announce.
            return updated
        await self.events.emit(conn, JobEvent(job.id, "job.cancelled", {}))
        await self.events.emit(conn, JobEvent(job.id, "job.progress", progress_event(updated)))
        await job_ended(conn, self.events, self.queue, updated, updated.status)
        return updated

    async def retry(
        self,
        conn: AsyncConnection,
        client: Client,
        job_id: str,
        *,
        completed_too: Collection[str] = (),
        cancelled_too: bool = False,
    ) -> tuple[JobRow, int]:
        """Run the failed items again (finished steps are reused, failed ones re-tried), the
        cancelled ones with ``cancelled_too`` (a cancelled job picks up where it stopped), and
        the completed items in ``completed_too`` (those a recipe finished only in part)."""
        job = await self.get(conn, client, job_id)
        retryable = job.failed + (job.cancelled if cancelled_too else 0)
        if job.status in JOB_ACTIVE and retryable == 0 and not completed_too:
            return job, 0
        if job.status not in (*JOB_ACTIVE, JOB_FAILED) and retryable == 0 and not completed_too:
            what = "failed or cancelled" if cancelled_too else "failed"
            raise Conflict(f"job {job_id} has no {what} items to retry", code="NOTHING_TO_RETRY")
        now = self.clock.now()
        reopened = await repo.reopen_failed_items(conn, job, now, cancelled_too=cancelled_too)
        reopened += await repo.reopen_completed_items(conn, job, sorted(completed_too), now)
        await self.queue.enqueue(
            conn, run_item_tasks(job.id, job.client_id, [i.id for i in reopened], job.priority)
        )
        updated = await self.get(conn, None, job.id)
        await self.events.emit(conn, JobEvent(job.id, "job.progress", progress_event(updated)))
        return updated, len(reopened)


def _nul_in(document: Any) -> str | None:
    """Where a NUL character sits in a JSON document (PostgreSQL stores none, in text or in
    JSON); walked with a stack, so no nesting can exhaust Python's."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return where or "the request"
        elif isinstance(value, dict):
            for key, inner in value.items():
                if "\x00" in str(key):
                    return f"{where}.{key!r}".lstrip(".")
                stack.append((f"{where}.{key}".lstrip("."), inner))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", inner) for index, inner in enumerate(value))
    return None


def _job_cursor(cursor: str) -> tuple[datetime, str]:
    raw = decode_cursor(cursor)
    try:
        moment = datetime.fromisoformat(str(raw["t"]))
        job_id = str(raw["id"])
    except (KeyError, ValueError) as exc:
        raise BadRequest("invalid cursor", code="INVALID_CURSOR") from exc
    if "\x00" in job_id:
        raise BadRequest("invalid cursor", code="INVALID_CURSOR")
    if moment.tzinfo is None:
        # Cursors we issue carry a zone; a naive one was made up and would fail to compare.
        raise BadRequest("invalid cursor", code="INVALID_CURSOR")
    return moment, job_id
