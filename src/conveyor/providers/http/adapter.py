"""``HttpModelAdapter``: runs one model of a declarative provider spec.

The life of a call, for an async model::

    render submit template (missing variables fail here, before any network)
    submit ──► task id ──► checkpoint(ProviderState)   the caller commits it
      └─ answer already final (Replicate ``Prefer: wait``)? finish now
    poll: sleep (short first, backing off toward the spec's interval, with jitter)
          cancelled? → cancel at the provider, raise ProviderCancelled
          404 while fresh → tolerated ``not_found_grace`` times
          5xx / timeout / 429 / garbage → tolerated ``max_errors`` times in a row,
                                          backing off toward ``max_interval``
          status running/unknown → sleep again; success → finish; failed → raise
    finish: fetch the result if it lives elsewhere (fal), store files, compute cost

A resumed call (``resume`` given) skips straight to polling: it never submits twice.
Sync models (OpenAI-compatible) take their result from the submit answer. Polling is
``await`` on the engine clock's sleep (``ProviderLimits.clock``), so a worker holds
thousands of these at once; ``max_wait`` is measured on the same clock's ``monotonic()``.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from conveyor.errors import ValidationFailed
from conveyor.providers import callbacks as provider_callbacks
from conveyor.providers.base import (
    Availability,
    Checkpoint,
    FileInput,
    ModelCall,
    ModelKind,
    ModelOutput,
    PollResult,
    ProviderState,
    StoredFile,
    TaskWait,
)
from conveyor.providers.errors import (
    ModelUnavailable,
    PermanentProviderError,
    ProviderCancelled,
    ProviderError,
    RetryableProviderError,
)
from conveyor.providers.extract import (
    ErrorExtractor,
    ResultExtractor,
    StatusMapper,
    TaskState,
    has_value,
    parse_path,
)
from conveyor.providers.http.outputs import (
    compute_cost,
    describe_answer,
    json_or_none,
    store_bytes,
    store_extracted,
)
from conveyor.providers.http.transport import (
    PreparedRequest,
    ProviderAnswer,
    ProviderCaller,
    UnreadableAnswer,
)
from conveyor.providers.limits import ProviderLimits
from conveyor.providers.spec import InputSpec, ModelSpec, ProviderSpec, RequestSpec
from conveyor.providers.template import TemplateVariablesMissing, render

__all__ = ["HttpModelAdapter"]

logger = logging.getLogger("conveyor.providers.http")


class HttpModelAdapter:
    """A ``ModelAdapter`` for one model of a declarative HTTP provider."""

    def __init__(
        self,
        spec: ProviderSpec,
        model: ModelSpec | str,
        session: aiohttp.ClientSession,
        limits: ProviderLimits,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        env: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        simulated: bool = False,
    ) -> None:
        self.spec = spec
        self.model = model if isinstance(model, ModelSpec) else spec.model(model)
        self.model_id: str = self.model.id
        self.kind: ModelKind = self.model.kind
        self.provider = spec.name
        self.limits = limits
        self.api_key = api_key or None
        self.base_url = (base_url or spec.base_url).rstrip("/")
        self.simulated = simulated
        self._rng = rng or random.Random()
        self._caller = ProviderCaller(spec, session, limits, rng=self._rng)
        environ = os.environ if env is None else env
        self.defaults: dict[str, Any] = dict(self.model.defaults)
        for variable, env_name in self.model.env_defaults.items():
            if environ.get(env_name):
                self.defaults[variable] = environ[env_name]
        status = self.model.status
        self._status = (
            StatusMapper(
                status.path,
                running=status.running,
                success=status.success,
                failed=status.failed,
                cancelled=status.cancelled,
                failed_when=status.failed_when,
            )
            if status
            else None
        )
        self._result = ResultExtractor(self.model.result.kind, self.model.result.paths)
        self._task_error = ErrorExtractor(self.model.error or spec.errors.paths)
        # The provider's secret for signing callbacks, where the model declares them.
        self.callback_secret = (
            provider_callbacks.provider_secret(self.model.callback, environ)
            if self.model.callback is not None
            else None
        )

    def __repr__(self) -> str:
        return f"<HttpModelAdapter {self.model_id} at {self.base_url}>"

    # A call costs money at the provider; a repeated submit is de-duplicated only when the
    # spec sends an idempotency key (the engine reads both; see ``execution.steps``).
    remote = True

    @property
    def idempotent(self) -> bool:
        return self.model.idempotency is not None

    def availability(self) -> Availability:
        if not self.model.active:
            return Availability(
                False,
                reason=f"{self.model_id} is switched off in its provider spec (active: false)",
                enable_with=f"active: true in provider '{self.provider}'",
            )
        auth = self.spec.auth
        if auth.type == "none" or self.api_key or self.simulated:
            return Availability(True)
        if auth.optional_with_custom_base_url and self.base_url != self.spec.base_url.rstrip("/"):
            return Availability(True)
        env_name = auth.key_env[0] if auth.key_env else None
        how = f"set {env_name}" if env_name else f"store a key for provider '{self.provider}'"
        return Availability(
            False,
            reason=f"no API key for {self.spec.title}: {how}",
            enable_with=env_name or f"provider key '{self.provider}'",
        )

    def catalogue_entry(self) -> dict[str, Any]:
        """What the catalogue shows about this model, with its availability."""
        model = self.model
        found = self.availability()
        return {
            "id": model.id,
            "kind": model.kind,
            "provider": self.provider,
            "title": model.title,
            "description": model.description,
            "pros": list(model.pros),
            "cons": list(model.cons),
            "tags": list(model.tags),
            "license": None,
            "price": model.price.model_dump(exclude_none=True) if model.price else None,
            "spec": {
                "defaults": self.defaults,
                "inputs": [
                    {"name": name, **field.model_dump(exclude_none=True)}
                    for name, field in model.inputs.items()
                ],
                "mode": model.mode,
                "docs": self.spec.docs,
            },
            "simulated": self.simulated,
            "available": found.available,
            "unavailable_reason": found.reason,
            "enable_with": found.enable_with,
        }

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        begun = await self.begin(call, resume=resume, checkpoint=checkpoint)
        if isinstance(begun, ModelOutput):
            return begun
        clock = self.limits.clock
        sleep = call.pause or clock.sleep
        try:
            while True:
                await sleep(begun.pause)
                if call.is_cancelled():
                    await self.cancel(begun)
                    raise ProviderCancelled(
                        f"{self.model_id}: task {begun.state.external_task_id} cancelled"
                    )
                if clock.monotonic() > begun.deadline:
                    await self.cancel(begun)
                    raise self.timed_out(begun)
                polled = await self.poll(begun)
                if polled.final:
                    if polled.error is not None:
                        raise polled.error
                    return await self.collect(call, begun.state, polled.answer)
        finally:
            self.wait_ended(begun)

    async def begin(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput | TaskWait:
        """Submit (or pick up ``resume``); the output if final at once, else a ``TaskWait``."""
        available = self.availability()
        if not available.available:
            raise ModelUnavailable(available.reason or "unavailable", provider=self.provider)
        variables = await self._variables(call)
        safety = self._safety_interval(call)
        if resume is not None and self.model.mode == "async":
            self._check_resume(resume)
            # A resumed task may have finished while nobody watched: look at once.
            return self._wait_on(variables, resume, fresh=False, safety=safety)
        submit = self._prepare(self.model.submit, variables, "submit")
        if call.urgent:
            submit.headers.update(self.model.submit.urgent_headers)
        callback = self.model.callback
        if callback is not None and call.callback_url and self.model.mode == "async":
            submit = provider_callbacks.with_callback(submit, callback, call.callback_url)
        if call.is_cancelled():
            raise ProviderCancelled(f"{self.model_id}: cancelled before submit")
        answer = await self._caller.send_retrying(submit)
        if self.model.mode == "sync":
            return await self._finish(call, variables, answer)
        state = self._state_from(answer)
        await checkpoint(state)
        if self._status is not None and self._status.raw(answer.data) is not None:
            # Some providers can answer at once (Replicate's ``Prefer: wait``).
            early = self._status.state(answer.data)
            if early == "success":
                return await self._finish(call, self._poll_variables(variables, state), answer)
            if early in ("failed", "cancelled"):
                raise self._task_failed(answer.data, early, state.external_task_id)
        return self._wait_on(variables, state, fresh=True, safety=safety)

    # -- variables and requests ---------------------------------------------------------

    async def _variables(self, call: ModelCall) -> dict[str, Any]:
        self._check_inputs(call.inputs)
        given: dict[str, Any] = {}
        for name, value in call.inputs.items():
            if isinstance(value, FileInput):
                given[name] = await call.files.url_for(value)
            elif isinstance(value, list | tuple) and any(isinstance(v, FileInput) for v in value):
                given[name] = [
                    await call.files.url_for(v) if isinstance(v, FileInput) else v for v in value
                ]
            else:
                given[name] = value
        return self._template_values(given, call.idempotency_key)

    def _template_values(self, given: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.defaults)
        for name, value in given.items():
            if value is not None:  # None is "not given": the default applies
                values[name] = value
        values["idempotency_key"] = idempotency_key
        values["model_id"] = self.model_id
        return values

    def prepare_submit(self, inputs: Mapping[str, Any], *, idempotency_key: str) -> PreparedRequest:
        """The submit request ``run`` would send for ``inputs`` (files given as URLs), built
        by the same code, key included; nothing is sent (the dry run masks the key)."""
        self._check_inputs(inputs)
        values = self._template_values(inputs, idempotency_key)
        return self._prepare(self.model.submit, values, "submit")

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        faults: list[str] = []
        for name, spec in self.model.inputs.items():
            value = inputs.get(name)
            if value is None:
                continue
            if not _matches(spec, value):
                faults.append(f"{name}: expected {spec.type}, got {type(value).__name__}")
            elif spec.enum is not None and value not in spec.enum:
                faults.append(f"{name}: must be one of {spec.enum}, got {value!r}")
        if faults:
            raise ValidationFailed(
                f"invalid inputs for {self.model_id}: " + "; ".join(faults),
                details={"errors": faults},
            )

    def _prepare(
        self, request: RequestSpec, variables: Mapping[str, Any], purpose: str
    ) -> PreparedRequest:
        rendered = render(request.template(), variables, context=f"{self.model_id} {purpose}")
        target = str(rendered.get("path") or "")
        if request.url is not None:
            url = target
            if _origin(url) != _origin(self.base_url):
                # The URL came from the provider's answer; the key must not follow it away.
                raise PermanentProviderError(
                    f"{self.spec.title}: {purpose} URL {url!r} is not on {self.base_url}; "
                    "refusing to send the API key there",
                    provider=self.provider,
                )
        else:
            url = self.base_url + target
        headers = {**self.spec.headers}
        headers.update({k: str(v) for k, v in (rendered.get("headers") or {}).items()})
        params = {k: _query_text(v) for k, v in (rendered.get("query") or {}).items()}
        body = rendered.get("body")
        if purpose == "submit" and self.model.idempotency is not None:
            key = str(variables["idempotency_key"])
            if self.model.idempotency.header:
                headers[self.model.idempotency.header] = key
            elif isinstance(body, dict) and self.model.idempotency.body_field:
                _set_dotted(body, self.model.idempotency.body_field, key)
        self._authorize(headers, params)
        if request.response == "json":
            headers.setdefault("Accept", "application/json")
        return PreparedRequest(
            purpose, request.method, url, headers, params, body, request.response
        )

    def _authorize(self, headers: dict[str, str], params: dict[str, str]) -> None:
        auth = self.spec.auth
        key = self.api_key
        if auth.type == "none" or not key:
            return
        if auth.type == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        elif auth.type == "header" and auth.header:
            headers[auth.header] = f"{auth.prefix}{key}"
        elif auth.type == "query" and auth.param:
            params[auth.param] = key

    # -- task state -----------------------------------------------------------------------

    def _state_from(self, answer: ProviderAnswer) -> ProviderState:
        submit = self.model.submit
        assert submit.task_id is not None
        task_id = parse_path(submit.task_id).get(answer.data)
        if not has_value(task_id) or isinstance(task_id, dict | list):
            raise UnreadableAnswer(
                f"{self.spec.title}: submit answer has no task id at {submit.task_id!r}: "
                f"{describe_answer(answer.data)}",
                provider=self.provider,
            )
        saved: dict[str, Any] = {}
        for name, path in submit.save.items():
            value = parse_path(path).get(answer.data)
            if not has_value(value):
                raise UnreadableAnswer(
                    f"{self.spec.title}: submit answer has no {name} at {path!r}: "
                    f"{describe_answer(answer.data)}",
                    provider=self.provider,
                )
            saved[name] = value
        return ProviderState(str(task_id), {"model_id": self.model_id, "saved": saved})

    def _check_resume(self, state: ProviderState) -> None:
        owner = state.data.get("model_id")
        if owner is not None and owner != self.model_id:
            raise PermanentProviderError(
                f"cannot resume a {owner} task with {self.model_id}", provider=self.provider
            )

    def _poll_variables(self, variables: Mapping[str, Any], state: ProviderState) -> dict[str, Any]:
        saved = state.data.get("saved")
        return {
            **variables,
            "task_id": state.external_task_id,
            "state": saved if isinstance(saved, dict) else {},
        }

    # -- polling ----------------------------------------------------------------------------

    def _safety_interval(self, call: ModelCall) -> float | None:
        """The pause between polls while a callback is awaited; None without one."""
        callback, poll = self.model.callback, self.model.poll
        if callback is None or poll is None or not call.callback_url:
            return None
        return callback.safety_interval or 4 * poll.interval

    def _wait_on(
        self,
        variables: Mapping[str, Any],
        state: ProviderState,
        *,
        fresh: bool,
        safety: float | None = None,
    ) -> TaskWait:
        poll = self.model.poll
        assert poll is not None
        pvars = self._poll_variables(variables, state)
        try:
            request = self._prepare(poll, pvars, "poll")
            cancel = (
                self._prepare(self.model.cancel, pvars, "cancel")
                if self.model.cancel is not None
                else None
            )
        except TemplateVariablesMissing as exc:
            raise PermanentProviderError(
                f"{self.model_id}: saved task state cannot be polled ({exc.message})",
                provider=self.provider,
            ) from None
        self.limits.task_started()
        # With a callback coming, polls are only the safety net for a lost one.
        nominal = (safety or poll.initial_interval) if fresh else 0.0
        return TaskWait(
            state,
            pause=nominal,
            deadline=self.limits.clock.monotonic() + poll.max_wait,
            handle=_PollHandle(request, cancel, nominal, safety),
        )

    def wait_ended(self, wait: TaskWait) -> None:
        """Stop counting ``wait`` as a task in flight at this provider."""
        handle = wait.handle
        if isinstance(handle, _PollHandle) and not handle.ended:
            handle.ended = True
            self.limits.task_ended()

    def timed_out(self, wait: TaskWait) -> PermanentProviderError:
        poll = self.model.poll
        assert poll is not None
        return PermanentProviderError(
            f"{self.spec.title}: task {wait.state.external_task_id} not finished after "
            f"{poll.max_wait:g} s; gave up",
            provider=self.provider,
            code="PROVIDER_TIMEOUT",
        )

    async def poll(self, wait: TaskWait) -> PollResult:
        """One poll of a waiting task; sets ``wait.pause`` when it is not final."""
        poll = self.model.poll
        status = self._status
        assert poll is not None
        assert status is not None
        handle: _PollHandle = wait.handle
        task_id = wait.state.external_task_id
        try:
            answer = await self._caller.send(handle.request)
        except (RetryableProviderError, UnreadableAnswer) as exc:
            handle.errors += 1
            if handle.errors >= poll.max_errors:
                exc.message = f"{exc.message} ({handle.errors} polls in a row failed)"
                exc.args = (exc.message,)
                return PollResult(final=True, error=exc)
            wait.pause = self._error_pause(handle.errors, exc)
            return PollResult(final=False)
        except PermanentProviderError as exc:
            if (
                exc.http_status == 404
                and not handle.seen
                and handle.not_found < poll.not_found_grace
            ):
                # gen-api: a fresh task can 404 for a few polls before it shows up.
                handle.not_found += 1
                handle.nominal = handle.safety or self._grow(handle.nominal)
                wait.pause = self._jitter(handle.nominal)
                return PollResult(final=False)
            if exc.http_status == 404:
                exc.message = f"{exc.message} (task {task_id} not found)"
                exc.args = (exc.message,)
            return PollResult(final=True, error=exc)
        handle.seen = True
        raw = status.raw(answer.data)
        current = status.state(answer.data)
        if current == "success":
            return PollResult(final=True, answer=answer)
        if current in ("failed", "cancelled"):
            return PollResult(final=True, error=self._task_failed(answer.data, current, task_id))
        if raw is None:
            handle.errors += 1
            if handle.errors >= poll.max_errors:
                return PollResult(
                    final=True,
                    error=UnreadableAnswer(
                        f"{self.spec.title}: poll answers have no status at "
                        f"{status.path.text!r}: {describe_answer(answer.data)}",
                        provider=self.provider,
                    ),
                )
            wait.pause = self._error_pause(handle.errors, None)
            return PollResult(final=False)
        handle.errors = 0
        if current == "unknown" and raw not in handle.warned:
            handle.warned.add(raw)
            logger.warning(
                "%s task %s: unknown status %r, still polling", self.model_id, task_id, raw
            )
        handle.nominal = handle.safety or self._grow(handle.nominal)
        wait.pause = self._jitter(handle.nominal)
        return PollResult(final=False)

    async def collect(self, call: ModelCall, state: ProviderState, answer: Any) -> ModelOutput:
        """Fetch (where the spec says) and store the result of a successful poll."""
        variables = self._poll_variables(await self._variables(call), state)
        return await self._finish(call, variables, answer)

    async def cancel(self, wait: TaskWait) -> None:
        handle: _PollHandle = wait.handle
        if handle.cancel is None:
            return
        try:
            await self._caller.send(handle.cancel)
        except (ProviderError, ValidationFailed) as exc:
            # Best effort: the step is over either way; the provider may bill the rest.
            logger.warning("%s: cancel at the provider failed: %s", self.model_id, exc)

    def _grow(self, nominal: float) -> float:
        poll = self.model.poll
        assert poll is not None
        if nominal <= 0:
            return poll.initial_interval
        return min(poll.interval, nominal * poll.backoff)

    def _jitter(self, seconds: float) -> float:
        poll = self.model.poll
        assert poll is not None
        spread = poll.jitter
        return seconds * self._rng.uniform(1 - spread, 1 + spread)

    def _error_pause(self, errors: int, exc: ProviderError | None) -> float:
        poll = self.model.poll
        assert poll is not None
        backoff = min(poll.max_interval, poll.interval * 2 ** (errors - 1))
        pause = self._rng.uniform(backoff / 2, backoff)
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            pause = max(pause, float(retry_after))
        return pause

    def _task_failed(self, data: Any, state: TaskState, task_id: str) -> PermanentProviderError:
        said = self._task_error.message(data)
        if state == "cancelled":
            text = f"{self.spec.title}: task {task_id} was cancelled at the provider"
        else:
            text = f"{self.spec.title}: {self.model_id} failed: {said or 'no reason given'}"
            for path in self.model.error_code:
                code = parse_path(path).get(data)
                if has_value(code) and not isinstance(code, dict | list):
                    # Kie's failCode: what a person reports to the provider's support.
                    text += f" ({path.rsplit('.', 1)[-1]} {code})"
                    break
        return PermanentProviderError(text, provider=self.provider, code="PROVIDER_TASK_FAILED")

    # -- results ------------------------------------------------------------------------------

    async def _finish(
        self, call: ModelCall, variables: Mapping[str, Any], answer: ProviderAnswer
    ) -> ModelOutput:
        final = answer
        if self.model.fetch_result is not None:
            fetch = self._prepare(self.model.fetch_result, variables, "fetch_result")
            final = await self._caller.send_retrying(fetch)
        price = self.model.price
        currency = price.currency if price is not None else None

        def priced(files: list[StoredFile] | None = None, **fields: Any) -> ModelOutput:
            cost = compute_cost(price, variables, final.data, files=len(files or []))
            return ModelOutput(files=files or [], cost=cost, currency=currency, **fields)

        if final.binary:
            stored = await store_bytes(
                final.body, call.files, provider=self.provider, mime_type=final.content_type
            )
            return priced([stored])
        extracted = self._result.extract(final.data)
        if extracted is None:
            said = self._task_error.message(final.data)
            raise UnreadableAnswer(
                f"{self.spec.title}: {self.model_id} finished but the answer holds no "
                f"{self.model.result.kind} at {self._result.describe()}"
                + (f" (provider says: {said})" if said else "")
                + f": {describe_answer(final.data)}",
                provider=self.provider,
            )
        kind = self.model.result.kind
        if kind in ("file", "files"):
            return priced(await store_extracted(extracted, call.files, provider=self.provider))
        if kind == "text":
            text = str(extracted.value)
            data = json_or_none(text) if self.model.result.also_json else None
            return priced(text=text, data=data)
        return priced(data=extracted.value)


@dataclass(slots=True)
class _PollHandle:
    """What polling one task needs: its requests, prepared once, and the poll's counters."""

    request: PreparedRequest
    cancel: PreparedRequest | None
    nominal: float
    # The pause between polls while a callback is awaited (polls are then a safety net).
    safety: float | None = None
    errors: int = 0
    not_found: int = 0
    seen: bool = False
    ended: bool = False
    warned: set[str] = field(default_factory=set)


def _matches(spec: InputSpec, value: Any) -> bool:
    kind = spec.type
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "file":
        return isinstance(value, FileInput | str)
    if kind == "files":
        return isinstance(value, list | tuple) and all(
            isinstance(v, FileInput | str) for v in value
        )
    if kind == "object":
        return isinstance(value, dict)
    if kind == "any":
        return True
    return isinstance(value, list | tuple)


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = URL(url)
    return (parsed.scheme, (parsed.host or "").lower(), parsed.port)


def _set_dotted(body: dict[str, Any], dotted: str, value: str) -> None:
    target = body
    *parents, last = dotted.split(".")
    for part in parents:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[last] = value
