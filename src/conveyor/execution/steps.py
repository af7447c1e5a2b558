"""Durable steps: what a recipe's ``await run.step(...)`` does.

A step tries its models in order. A step that finished in an earlier run of the item is
returned from ``step_runs`` without a call; a step whose provider task id was committed
resumes polling it; otherwise the model is called, its task id committed before the first
poll, and its result stored with the files it produced, in one transaction.

Errors decide by ``retryable`` (``conveyor.errors``): a permanent failure moves the step down
its chain, a retryable one too but is remembered; when no model is left the step fails for
good (``ItemFailed``) unless a retryable failure was seen (``TemporaryFailure``: the queue
runs the item again later, and finished steps are not paid for twice). A retryable failure
of a task the provider already accepted (polls failing, the result not downloadable yet)
leaves the step running with its task id, so the next run polls that task again instead of
paying for a second one.

Before a remote model is called the step records that a submit is under way (in a write
fenced on the item's queue task: a worker that lost the task stops before paying). A resumed
step that finds a submit under way without a task id submits again with the same idempotency
key (a provider that takes one de-duplicates it) and says so in the item's provenance.

**Reuse across items.** A step may name the work it does with a ``reuse_key`` (the recipe's
words for "this medium of this word, in this language, by this chain, with this prompt").
The key is stored hashed together with the client's id, so one client's work is never
another's. With ``reuse`` on, a step first looks for a succeeded step run under the same
key (one indexed query) and, when its files still exist, takes its output without calling
any model: the files get asset rows of their own for this item (same stored bytes, so
purging the older job keeps them), and the step run and provenance say ``reused``.

While a pollable provider works on a step's task, the item *parks* (``StepParked``; see
``execution.polling``) when that step is the only one the item is running: the scheduler
polls, then runs the item again with the news (``ItemExecution.news``), and this step
collects the result. Steps running side by side poll in their own coroutines instead.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.core.db import after_commit, database_busy_or_away
from conveyor.core.ids import new_id
from conveyor.errors import ConveyorError, ItemFailed, TemporaryFailure
from conveyor.execution.engine import EngineDeps
from conveyor.execution.files import ItemFiles, fresh_assets
from conveyor.execution.metrics import STEP_SECONDS
from conveyor.execution.polling import StepNews
from conveyor.jobs.models import (
    JOB_PENDING,
    STEP_CANCELLED,
    STEP_FAILED,
    STEP_RUNNING,
    STEP_SUBMITTING,
    STEP_SUCCEEDED,
    ItemRow,
    JobRow,
    StepRunRow,
)
from conveyor.providers.base import (
    ModelAdapter,
    ModelCall,
    ModelOutput,
    PollableAdapter,
    ProviderState,
    StoredFile,
    TaskWait,
)
from conveyor.providers.errors import ProviderCancelled


class ItemCancelled(Exception):
    """The job was cancelled while the item ran."""


class StepParked(Exception):
    """The step's task is with a provider: the item waits in the poll scheduler."""

    def __init__(self, step_run_id: str, adapter: PollableAdapter, wait: TaskWait) -> None:
        super().__init__(step_run_id)
        self.step_run_id = step_run_id
        self.adapter = adapter
        self.wait = wait


Fence = Callable[[AsyncConnection], Awaitable[None]]


def scoped_reuse_key(client_id: str, reuse_key: str) -> str:
    """The stored form of a recipe's reuse key: only the same client's steps share it."""
    return hashlib.sha256(f"{client_id}\n{reuse_key}".encode()).hexdigest()


def _unprefixed(message: str, model_id: str) -> str:
    """``message`` without a leading ``"<model_id>: "``: the step's summary names the model
    before each error, and an error that names it too would read ``m: m: ...``."""
    prefix = f"{model_id}: "
    while message.startswith(prefix):
        message = message[len(prefix) :]
    return message


def _pollable(adapter: ModelAdapter | None) -> PollableAdapter | None:
    return adapter if hasattr(adapter, "begin") else None  # type: ignore[return-value]


def _step_output(output: ModelOutput) -> dict[str, Any]:
    return {
        "model_id": output.model_id,
        "text": output.text,
        "data": output.data,
        "cost": output.cost,
        "currency": output.currency,
        "files": [
            {"asset_id": f.asset_id, "mime_type": f.mime_type, "size": f.size, "sha256": f.sha256}
            for f in output.files
        ],
    }


def _model_output(saved: dict[str, Any]) -> ModelOutput:
    return ModelOutput(
        text=saved.get("text"),
        data=saved.get("data"),
        files=[StoredFile(**f) for f in saved.get("files") or []],
        cost=saved.get("cost"),
        currency=saved.get("currency"),
        model_id=saved.get("model_id"),
        reused=saved.get("reused_from") is not None,
    )


log = logging.getLogger(__name__)


@dataclass(slots=True)
class ItemExecution:
    """One run of a recipe over one item; implements ``recipes.base.ItemRun``."""

    deps: EngineDeps
    job: JobRow
    item: ItemRow
    prior: list[StepRunRow]
    files: ItemFiles
    stages: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    last_model: str | None = None
    started: bool = False
    # Parking is allowed (a worker with a poll scheduler runs this item), and what the
    # scheduler found for the step that parked when this run was resumed.
    can_park: bool = False
    news: StepNews | None = None
    # Checks, inside a write, that this worker still owns the item's queue task.
    fence: Fence | None = None
    # The job is waited on by a caller (sync priority): providers may hold the answer.
    urgent: bool = False
    _active_steps: int = 0
    _submitted: set[str] = field(default_factory=set)
    # Input fetches running now: a cancel interrupts them at once (see ``interruptible``).
    _fetching: int = 0

    @property
    def item_id(self) -> str:
        return self.item.id

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def client_id(self) -> str:
        return self.job.client_id

    @property
    def key(self) -> str | None:
        return self.item.key

    @property
    def input(self) -> dict[str, Any]:
        return self.item.input

    @property
    def options(self) -> dict[str, Any]:
        return self.job.options

    @property
    def languages(self) -> list[str]:
        return list(self.job.languages or [])

    def now(self) -> datetime:
        return self.deps.clock.now()

    async def sleep(self, seconds: float) -> None:
        await self.deps.clock.sleep(seconds)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def cancelled(self) -> bool:
        return self.deps.watch.is_cancelled(self.job.id)

    async def _start(self, conn: AsyncConnection) -> None:
        """Every write of the item checks it still owns its task; the first of this run
        also marks the item running."""
        if self.fence is not None:
            await self.fence(conn)
        if self.started:
            return
        if not await self.deps.items.start(
            conn, self.item, job_pending=self.job.status == JOB_PENDING
        ):
            raise ItemCancelled()  # closed meanwhile: the job was cancelled

        def mark() -> None:
            self.started = True

        after_commit(conn, mark)

    async def set_stage(self, stage: str) -> None:
        async with self.deps.db.write() as conn:
            await self._start(conn)
            await self.deps.items.set_stage(conn, self.item, stage, self.stages)

    async def fetch_input(self, url: str, *, images_only: bool = False) -> StoredFile:
        if self.cancelled():
            raise ItemCancelled()
        self._fetching += 1
        try:
            return await self.files.store_input(url, accept=("image/*",) if images_only else None)
        finally:
            self._fetching -= 1

    @property
    def interruptible(self) -> bool:
        """Whether stopping the item's coroutine now loses nothing worth a goodbye: it is
        fetching inputs (a step in a model call instead cancels at the provider itself)."""
        return self._fetching > 0

    async def step(
        self,
        name: str,
        models: Sequence[str],
        inputs: dict[str, Any],
        *,
        reuse_key: str | None = None,
        reuse: bool = True,
    ) -> ModelOutput:
        self._active_steps += 1
        try:
            return await self._step(name, models, inputs, reuse_key, reuse)
        finally:
            self._active_steps -= 1

    async def _step(
        self,
        name: str,
        models: Sequence[str],
        inputs: dict[str, Any],
        reuse_key: str | None,
        reuse: bool,
    ) -> ModelOutput:
        for row in reversed(self.prior):
            if row.step == name and row.status == STEP_SUCCEEDED and row.output is not None:
                output = _model_output(row.output)
                self._note(name, output.model_id, [], reused=output.reused)
                if _was_resent(row.provider_state) and output.model_id is not None:
                    self._note_interrupted_submit(name, output.model_id)
                return output
        scoped = scoped_reuse_key(self.client_id, reuse_key) if reuse_key is not None else None
        if scoped is not None and reuse:
            reused = await self._reuse(name, models, scoped)
            if reused is not None:
                return reused
        this_run = [r for r in self.prior if r.step == name and r.item_run == self.item.runs]
        tried: list[dict[str, str]] = []
        transient: ConveyorError | None = None
        for index, model_id in enumerate(models):
            earlier = [r for r in this_run if r.model_id == model_id]
            permanent = next(
                (r for r in earlier if r.status == STEP_FAILED and not r.retryable), None
            )
            if permanent is not None:
                tried.append({"model": model_id, "error": permanent.error or "failed"})
                continue
            adapter = self.deps.models.get(model_id)
            if adapter is None:
                tried.append({"model": model_id, "error": "unknown model"})
                continue
            availability = adapter.availability()
            if not availability.available:
                tried.append({"model": model_id, "error": availability.reason or "unavailable"})
                continue
            try:
                output = await self._call(name, model_id, index, earlier, inputs, scoped)
            except ConveyorError as exc:
                tried.append({"model": model_id, "error": _unprefixed(exc.message, model_id)})
                if exc.retryable:
                    transient = exc
                continue
            self._note(name, model_id, tried)
            return output
        summary = "; ".join(f"{t['model']}: {t['error']}" for t in tried) or "no model configured"
        if transient is not None:
            raise TemporaryFailure(f"step {name!r}: {summary}", retry_after=transient.retry_after)
        raise ItemFailed(f"step {name!r} failed: {summary}", code="STEP_FAILED")

    def _note(
        self,
        step: str,
        model_id: str | None,
        tried: list[dict[str, str]],
        *,
        reused: bool = False,
    ) -> None:
        self.last_model = model_id
        self.provenance[step] = {
            "model": model_id,
            **({"fallback_from": tried} if tried else {}),
            **({"reused": True} if reused else {}),
        }

    async def _reuse(self, step: str, models: Sequence[str], key: str) -> ModelOutput | None:
        """An earlier succeeded step's output under ``key``, recorded as this step's; None
        if there is none or its files are gone (purged)."""
        async with self.deps.db.read() as conn:
            earlier = await self.deps.items.reusable_step_run(conn, key)
            if earlier is None or earlier.output is None:
                return None
            saved = earlier.output
            asset_ids = [f["asset_id"] for f in saved.get("files") or []]
            found = await self.deps.assets.get_many(conn, asset_ids)
        if any(a not in found or found[a].client_id != self.client_id for a in asset_ids):
            return None
        now = self.now()
        # Rows of this item's own for the same stored bytes: purging the older job deletes
        # its rows, never bytes another row still names.
        copies = {
            a: replace(
                found[a],
                id=new_id(),
                job_id=self.job.id,
                item_id=self.item.id,
                meta={"reused_from": a},
                created_at=now,
            )
            for a in asset_ids
        }
        model_id = saved.get("model_id") or earlier.model_id
        output = {
            **saved,
            "files": [
                {**f, "asset_id": copies[f["asset_id"]].id} for f in saved.get("files") or []
            ],
            "cost": None,
            "model_id": model_id,
            "reused_from": earlier.id,
        }
        async with self.deps.db.write() as conn:
            await self._start(conn)
            await self.deps.assets.add(conn, *copies.values())
            await self.deps.items.save_step_run(
                conn,
                {
                    "id": new_id(),
                    "item_id": self.item.id,
                    "step": step,
                    "model_id": model_id,
                    "chain_index": models.index(model_id) if model_id in models else 0,
                    "item_run": self.item.runs,
                    "attempt": 1,
                    "status": STEP_SUCCEEDED,
                    "retryable": False,
                    "output": output,
                    "started_at": now,
                    "finished_at": now,
                    "reuse_key": key,
                },
            )
        self._note(step, model_id, [], reused=True)
        return _model_output(output)

    async def _call(
        self,
        step: str,
        model_id: str,
        index: int,
        earlier: list[StepRunRow],
        inputs: dict[str, Any],
        reuse_key: str | None,
    ) -> ModelOutput:
        resume_row = next(
            (r for r in earlier if r.status == STEP_RUNNING and r.external_task_id), None
        )
        interrupted = next((r for r in earlier if r.status == STEP_SUBMITTING), None)
        failures = sum(1 for r in earlier if r.status == STEP_FAILED)
        carried = resume_row or interrupted
        row_id = carried.id if carried else new_id()
        started = carried.started_at if carried else self.now()
        base = {
            "id": row_id,
            "item_id": self.item.id,
            "step": step,
            "model_id": model_id,
            "chain_index": index,
            "item_run": self.item.runs,
            "attempt": failures + 1,
            "started_at": started,
            "reuse_key": reuse_key,
        }
        db = self.deps.db

        resent = interrupted is not None or (
            resume_row is not None and _was_resent(resume_row.provider_state)
        )

        async def checkpoint(state: ProviderState) -> None:
            self._submitted.add(row_id)
            # A re-sent submit stays marked on its row: the run that finishes the step (after
            # a park, or a later retry reusing it) tells the item's provenance so too.
            data = {**state.data, RESENT_SUBMIT: True} if resent else state.data
            async with db.write() as conn:
                await self._start(conn)
                await self.deps.items.save_step_run(
                    conn,
                    {
                        **base,
                        "status": STEP_RUNNING,
                        "external_task_id": state.external_task_id,
                        "provider_state": data,
                    },
                )

        callbacks = self.deps.callbacks
        callback_url = callbacks.url_for(model_id, row_id) if callbacks is not None else None
        called_back = callbacks if callback_url else None
        call = ModelCall(
            model_id=model_id,
            inputs=inputs,
            # Stable across a crash before the checkpoint: the provider can de-duplicate.
            idempotency_key=f"{self.item.id}:{self.item.runs}:{step}:{model_id}:{failures + 1}",
            files=self.files,
            is_cancelled=self.cancelled,
            urgent=self.urgent,
            callback_url=callback_url,
            pause=called_back.pause(row_id) if called_back else None,
        )
        resume = (
            ProviderState(resume_row.external_task_id, resume_row.provider_state or {})
            if resume_row and resume_row.external_task_id
            else None
        )
        adapter = self.deps.models.get(model_id)
        assert adapter is not None
        if resent:
            self._note_interrupted_submit(step, model_id)
        if resume is None and getattr(adapter, "remote", True):
            await self._write_row({**base, "status": STEP_SUBMITTING}, must_be_open=True)
        timer = time.perf_counter()
        outcome = "failed"
        submitted = resume is not None
        try:
            pollable = _pollable(adapter) if self.can_park and self._active_steps == 1 else None
            if pollable is not None:
                output = await self._call_parking(pollable, call, row_id, resume, checkpoint)
            else:
                with called_back.listening(row_id) if called_back else nullcontext():
                    output = await adapter.run(call, resume=resume, checkpoint=checkpoint)
            outcome = "succeeded"
        except StepParked:
            outcome = "parked"
            raise
        except ProviderCancelled as exc:
            await self._save(base, STEP_CANCELLED, error=exc.message)
            raise ItemCancelled() from exc
        except ItemCancelled:
            await self._save(base, STEP_CANCELLED, error="the job was cancelled")
            raise
        except ConveyorError as exc:
            if exc.retryable and (submitted or self._checkpointed(row_id)):
                # The provider has the task: the next run polls it, never pays again.
                raise
            await self._save(base, STEP_FAILED, error=exc.message, retryable=exc.retryable)
            raise
        finally:
            if outcome != "parked":
                STEP_SECONDS.labels(model_id, outcome).observe(time.perf_counter() - timer)
        output.model_id = model_id
        await self._save(
            base,
            STEP_SUCCEEDED,
            output=_step_output(output),
            cost=output.cost,
            files=output.files,
        )
        return output

    def _checkpointed(self, row_id: str) -> bool:
        return row_id in self._submitted

    def _note_interrupted_submit(self, step: str, model_id: str) -> None:
        adapter = self.deps.models.get(model_id)
        idempotent = bool(getattr(adapter, "idempotent", False))
        notes = self.provenance.setdefault("interrupted_submits", [])
        note = {"step": step, "model": model_id, "deduplicated": idempotent}
        if note in notes:
            return
        notes.append(note)
        if not idempotent:
            self.warn(
                f"a submit to {model_id} was under way when its worker stopped; it was sent "
                "again, and the provider (which takes no idempotency key) may have run it twice"
            )

    async def _write_row(self, values: dict[str, Any], *, must_be_open: bool = False) -> None:
        async with self.deps.db.write() as conn:
            await self._start(conn)
            if must_be_open and not await self.deps.items.is_open(conn, self.item.id):
                # Cancelled since this run began: never pay for an item nobody wants.
                raise ItemCancelled()
            await self.deps.items.save_step_run(conn, values)

    async def _call_parking(
        self,
        adapter: PollableAdapter,
        call: ModelCall,
        row_id: str,
        resume: ProviderState | None,
        checkpoint: Any,
    ) -> ModelOutput:
        news = self.news if self.news is not None and self.news.step_run_id == row_id else None
        if resume is not None and news is not None:
            self.news = None
            if news.result is None:
                raise ItemCancelled()
            if news.result.error is not None:
                raise news.result.error
            return await adapter.collect(call, resume, news.result.answer)
        begun = await adapter.begin(call, resume=resume, checkpoint=checkpoint)
        if isinstance(begun, ModelOutput):
            return begun
        raise StepParked(row_id, adapter, begun)

    async def _save(
        self,
        base: dict[str, Any],
        status: str,
        *,
        error: str | None = None,
        retryable: bool = False,
        output: dict[str, Any] | None = None,
        cost: float | None = None,
        files: list[StoredFile] | None = None,
    ) -> None:
        values = {
            **base,
            "status": status,
            "error": error,
            "retryable": retryable,
            "output": output,
            "cost": cost,
            "finished_at": self.now(),
        }
        # A succeeded step has been paid for: a database that is briefly away (no pooled
        # connection free, a restart, a locked SQLite file) must not lose the result and send
        # the item back to the provider. Other outcomes are cheap to redo and are not retried.
        attempts = RESULT_WRITE_ATTEMPTS if status == STEP_SUCCEEDED else 1
        for attempt in range(1, attempts + 1):
            try:
                async with self.deps.db.write() as conn:
                    await self._start(conn)
                    await self.deps.assets.add(conn, *fresh_assets(files or []))
                    await self.deps.items.save_step_run(conn, values)
                return
            except Exception as exc:
                if attempt == attempts or not database_busy_or_away(exc):
                    raise
                pause = min(RESULT_WRITE_PAUSE * 2 ** (attempt - 1), 10.0)
                log.warning(
                    "step %s of item %s: its result could not be written (%s); trying again "
                    "in %.1f s",
                    base["step"],
                    self.item.id,
                    type(exc).__name__,
                    pause,
                )
                await self.deps.clock.sleep(pause)


# How often, and after what first pause (doubling), a paid step's result is written again.
RESULT_WRITE_ATTEMPTS = 6
RESULT_WRITE_PAUSE = 0.5

# Kept in a step run's provider state once its submit was sent again after a worker died
# mid-submit (``ItemExecution._call``).
RESENT_SUBMIT = "conveyor_resent_submit"


def _was_resent(provider_state: dict[str, Any] | None) -> bool:
    return bool(provider_state and provider_state.get(RESENT_SUBMIT))
