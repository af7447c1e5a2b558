"""Provider callbacks in the engine: the URL a step sends, and what a call to it does.

Where a model's spec declares ``callback:`` and ``CONVEYOR_PUBLIC_URL`` says how providers
reach this server, ``StepCallbacks.url_for`` gives the step a signed per-step URL (valid for
the model's poll budget plus a margin) and the step pauses between polls on
``StepWakeups`` (``execution.wakeups``), so a callback can end the pause.

``CallbackReceiver.receive`` is the route's work (``POST /v1/callbacks/...``). In order:
the URL's own signature and expiry (``verify_address``: forged or expired → 401); the step
run it names (unknown → 404); the provider's signature, lateness and replays
(``CallbackVerifier``: 401, 409); the task id against the step's ``external_task_id``
(``expect_task``: 409). A refused call changes nothing. A call for a step that already
finished is answered 200 and ignored. Otherwise a ``step.wake`` event is published (to every
node on PostgreSQL), and the worker running the step polls the provider at once: a callback
is only ever "the task may be done", never a result (``conveyor.providers.callbacks``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.execution.wakeups import StepWakeups
from conveyor.jobs.events import STEP_WAKE, EventBus, JobEvent
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import STEP_RUNNING
from conveyor.providers.base import Pause
from conveyor.providers.callbacks import (
    CallbackRefused,
    CallbackVerifier,
    ReplayGuard,
    callback_url,
    expect_task,
    verify_address,
)
from conveyor.providers.http import HttpModelAdapter
from conveyor.providers.registry import ModelRegistry

__all__ = ["CallbackOutcome", "CallbackReceiver", "StepCallbacks"]

# A callback URL outlives the model's poll budget by this much: a provider may retry its
# delivery a little after the task ended.
URL_MARGIN: Final = 600.0


def _called_back(adapter: object) -> HttpModelAdapter | None:
    if isinstance(adapter, HttpModelAdapter) and adapter.model.callback is not None:
        return adapter
    return None


class StepCallbacks:
    """What a step needs to be called back: its URL, and a pause a callback ends."""

    def __init__(
        self,
        models: ModelRegistry,
        wakeups: StepWakeups,
        clock: Clock,
        *,
        public_url: str,
        secret: str,
    ) -> None:
        self.models = models
        self.wakeups = wakeups
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.secret = secret

    def url_for(self, model_id: str, step_run_id: str) -> str | None:
        """The step's callback URL; None when the model takes none or no public URL is set."""
        adapter = _called_back(self.models.get(model_id))
        if adapter is None or not self.public_url or adapter.model.poll is None:
            return None
        expires = int(self.clock.timestamp() + adapter.model.poll.max_wait + URL_MARGIN)
        return callback_url(
            self.public_url,
            self.secret,
            provider=adapter.provider,
            step_run_id=step_run_id,
            expires=expires,
        )

    def pause(self, step_run_id: str) -> Pause:
        """Wait between polls of this step; a callback for it ends the wait."""

        async def pause(seconds: float) -> None:
            await self.wakeups.sleep(step_run_id, seconds)

        return pause

    def listening(self, step_run_id: str) -> contextlib.AbstractContextManager[None]:
        """Keep wakes for the step while its model runs."""
        return self.wakeups.listening(step_run_id)


@dataclass(frozen=True, slots=True)
class CallbackOutcome:
    """What an accepted callback did: woke the step, or nothing (it had finished)."""

    action: Literal["woken", "ignored"]
    step_run_id: str
    reason: str


class CallbackReceiver:
    """Verifies a provider's call to a step's callback URL and wakes the step."""

    def __init__(
        self,
        db: Database,
        items: ItemService,
        models: ModelRegistry,
        events: EventBus,
        clock: Clock,
        *,
        secret: str,
        guard: ReplayGuard | None = None,
    ) -> None:
        self.db = db
        self.items = items
        self.models = models
        self.events = events
        self.clock = clock
        self.secret = secret
        # Per process: a replay sent to another node meets a finished step there.
        self.guard = guard or ReplayGuard()

    async def receive(
        self,
        *,
        provider: str,
        step_run_id: str,
        expires: str,
        signature: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> CallbackOutcome:
        """Refuse (``CallbackRefused``, nothing changed) or wake the step; see the module."""
        now = self.clock.timestamp()
        address = verify_address(
            self.secret,
            provider=provider,
            step_run_id=step_run_id,
            expires=expires,
            signature=signature,
            now=now,
        )
        async with self.db.read() as conn:
            step = await self.items.get_step_run(conn, address.step_run_id)
        if step is None:
            raise CallbackRefused(
                f"no step run {address.step_run_id} is waiting here (not recorded yet, or "
                "deleted); nothing changed",
                status_code=404,
                code="CALLBACK_UNKNOWN_STEP",
            )
        adapter = _called_back(self.models.get(step.model_id))
        if adapter is None or adapter.provider != address.provider:
            raise CallbackRefused(
                f"model {step.model_id} takes no callbacks from {address.provider!r}",
                status_code=404,
                code="CALLBACK_UNKNOWN_STEP",
            )
        assert adapter.model.callback is not None
        verifier = CallbackVerifier(
            adapter.model.callback,
            adapter.model.status,
            secret=adapter.callback_secret,
            guard=self.guard,
        )
        event = verifier.verify(address, headers, body, now=now)
        expect_task(event, step.external_task_id)
        if step.status != STEP_RUNNING:
            return CallbackOutcome("ignored", step.id, f"the step is {step.status} already")
        async with self.db.write() as conn:
            item = await self.items.get_item(conn, step.item_id)
            if item is None:
                return CallbackOutcome("ignored", step.id, "the item was deleted")
            await self.events.emit(conn, JobEvent(item.job_id, STEP_WAKE, {"step_run_id": step.id}))
        return CallbackOutcome("woken", step.id, f"task {event.task_id} is polled now")
