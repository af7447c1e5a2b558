"""Durable steps: what a recipe's ``await run.step(...)`` does.

A step tries its models in order. A step that finished in an earlier run of the item is
returned from ``step_runs`` without a call; a step whose provider task id was committed
resumes polling it; otherwise the model is called, its task id committed before the first
poll, and its result stored with the files it produced, in one transaction.

Errors decide by ``retryable`` (``conveyor.errors``): a permanent failure moves the step down
its chain, a retryable one too but is remembered; when no model is left the step fails for
good (``ItemFailed``) unless a retryable failure was seen (``TemporaryFailure``: the queue
runs the item again later, and finished steps are not paid for twice).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.core.db import after_commit
from conveyor.core.ids import new_id
from conveyor.errors import ConveyorError, ItemFailed, TemporaryFailure
from conveyor.execution.engine import EngineDeps
from conveyor.execution.files import ItemFiles, fresh_assets
from conveyor.execution.metrics import STEP_SECONDS
from conveyor.jobs.models import (
    JOB_PENDING,
    STEP_CANCELLED,
    STEP_FAILED,
    STEP_RUNNING,
    STEP_SUCCEEDED,
    ItemRow,
    JobRow,
    StepRunRow,
)
from conveyor.providers.base import ModelCall, ModelOutput, ProviderState, StoredFile
from conveyor.providers.errors import ProviderCancelled


class ItemCancelled(Exception):
    """The job was cancelled while the item ran."""


def _step_output(output: ModelOutput) -> dict[str, Any]:
    return {
        "model_id": output.model_id,
        "text": output.text,
        "data": output.data,
        "cost": output.cost,
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
        model_id=saved.get("model_id"),
    )


@dataclass(slots=True)
class ItemExecution:
    """One run of a recipe over one item; implements ``recipes.base.ItemRun``."""

    deps: EngineDeps
    job: JobRow
    item: ItemRow
    prior: list[StepRunRow]
    files: ItemFiles
    stages: tuple[str, ...] = ()
    cost: float = 0.0
    warnings: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    last_model: str | None = None
    started: bool = False

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
        """The item's first write of this run also marks it running."""
        if self.started:
            return
        await self.deps.items.start(conn, self.item, job_pending=self.job.status == JOB_PENDING)

        def mark() -> None:
            self.started = True

        after_commit(conn, mark)

    async def set_stage(self, stage: str) -> None:
        async with self.deps.db.write() as conn:
            await self._start(conn)
            await self.deps.items.set_stage(conn, self.item, stage, self.stages)

    async def fetch_input(self, url: str, *, images_only: bool = False) -> StoredFile:
        return await self.files.store_input(url, accept=("image/*",) if images_only else None)

    async def step(self, name: str, models: Sequence[str], inputs: dict[str, Any]) -> ModelOutput:
        for row in reversed(self.prior):
            if row.step == name and row.status == STEP_SUCCEEDED and row.output is not None:
                output = _model_output(row.output)
                self._note(name, output.model_id, [])
                return output
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
                output = await self._call(name, model_id, index, earlier, inputs)
            except ConveyorError as exc:
                tried.append({"model": model_id, "error": exc.message})
                if exc.retryable:
                    transient = exc
                continue
            self._note(name, model_id, tried)
            return output
        summary = "; ".join(f"{t['model']}: {t['error']}" for t in tried) or "no model configured"
        if transient is not None:
            raise TemporaryFailure(f"step {name!r}: {summary}", retry_after=transient.retry_after)
        raise ItemFailed(f"step {name!r} failed: {summary}", code="STEP_FAILED")

    def _note(self, step: str, model_id: str | None, tried: list[dict[str, str]]) -> None:
        self.last_model = model_id
        self.provenance[step] = {"model": model_id, **({"fallback_from": tried} if tried else {})}

    async def _call(
        self,
        step: str,
        model_id: str,
        index: int,
        earlier: list[StepRunRow],
        inputs: dict[str, Any],
    ) -> ModelOutput:
        resume_row = next(
            (r for r in earlier if r.status == STEP_RUNNING and r.external_task_id), None
        )
        failures = sum(1 for r in earlier if r.status == STEP_FAILED)
        row_id = resume_row.id if resume_row else new_id()
        started = resume_row.started_at if resume_row else self.now()
        base = {
            "id": row_id,
            "item_id": self.item.id,
            "step": step,
            "model_id": model_id,
            "chain_index": index,
            "item_run": self.item.runs,
            "attempt": failures + 1,
            "started_at": started,
        }
        db = self.deps.db

        async def checkpoint(state: ProviderState) -> None:
            async with db.write() as conn:
                await self._start(conn)
                await self.deps.items.save_step_run(
                    conn,
                    {
                        **base,
                        "status": STEP_RUNNING,
                        "external_task_id": state.external_task_id,
                        "provider_state": state.data,
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
            callback_url=callback_url,
            pause=called_back.pause(row_id) if called_back else None,
        )
        resume = (
            ProviderState(resume_row.external_task_id, resume_row.provider_state or {})
            if resume_row and resume_row.external_task_id
            else None
        )
        timer = time.perf_counter()
        outcome = "failed"
        try:
            with called_back.listening(row_id) if called_back else nullcontext():
                output = await self.deps.models.get(model_id).run(  # type: ignore[union-attr]
                    call, resume=resume, checkpoint=checkpoint
                )
            outcome = "succeeded"
        except ProviderCancelled as exc:
            await self._save(base, STEP_CANCELLED, error=exc.message)
            raise ItemCancelled() from exc
        except ConveyorError as exc:
            await self._save(base, STEP_FAILED, error=exc.message, retryable=exc.retryable)
            raise
        finally:
            STEP_SECONDS.labels(model_id, outcome).observe(time.perf_counter() - timer)
        output.model_id = model_id
        self.cost += output.cost or 0.0
        await self._save(
            base,
            STEP_SUCCEEDED,
            output=_step_output(output),
            cost=output.cost,
            files=output.files,
        )
        return output

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
        async with self.deps.db.write() as conn:
            await self._start(conn)
            await self.deps.assets.add(conn, *fresh_assets(files or []))
            await self.deps.items.save_step_run(
                conn,
                {
                    **base,
                    "status": status,
                    "error": error,
                    "retryable": retryable,
                    "output": output,
                    "cost": cost,
                    "finished_at": self.now(),
                },
            )
