"""``ProviderSpec``: one remote provider and its models, as data (a YAML file or a DB row).

A spec says how to reach the provider (base URL, auth, limits, what its HTTP statuses
mean) and, per model, how to submit a task (a ``{{placeholder}}`` template), where the task
id is, how to poll, how to read the status, where the result and the error are, and how
to cancel. ``docs/providers.md`` is the reference with a full example; the shipped specs
are in ``providers/specs/``.

Everything is checked on load: unknown keys, paths that do not parse, a template using a
``{{placeholder}}`` the model never gets (not an input, a default or a built-in variable), a
poll template using a ``{{state.x}}`` the submit step never saves, a status value listed as
both running and failed. ``ProviderSpecError`` lists every fault with its location
(``models[0] genapi/z-image: poll.interval: ...``) so a spec is fixed in one pass.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from conveyor.errors import ValidationFailed
from conveyor.providers.base import ModelKind
from conveyor.providers.extract import PathSyntaxError, ResultKind, parse_path
from conveyor.providers.template import Placeholder, placeholders

__all__ = [
    "AFTER_SUBMIT_VARIABLES",
    "BUILTIN_VARIABLES",
    "AuthSpec",
    "CallbackSpec",
    "EnvelopeSpec",
    "ErrorsSpec",
    "IdempotencySpec",
    "InputSpec",
    "LimitsSpec",
    "ModelSpec",
    "PollSpec",
    "PriceSpec",
    "ProviderSpec",
    "ProviderSpecError",
    "RequestSpec",
    "ResultSpec",
    "StatusSpec",
    "SubmitSpec",
    "load_spec_file",
    "parse_spec",
    "parse_spec_text",
    "read_spec_yaml",
]

DEFAULT_ERROR_PATHS = ["error.message", "error", "message", "detail", "msg", "errors"]
# Variables every request template may use besides the model's inputs and defaults.
BUILTIN_VARIABLES = frozenset({"idempotency_key", "model_id"})
# ... and those that exist only once the task was submitted.
AFTER_SUBMIT_VARIABLES = frozenset({"task_id", "state"})


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_listify)]


def _check_path(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a path must be a string like 'data.id', not {type(value).__name__}")
    try:
        parse_path(value)
    except PathSyntaxError as exc:
        raise ValueError(str(exc)) from None
    return value


PathStr = Annotated[str, BeforeValidator(_check_path)]
PathList = Annotated[list[PathStr], BeforeValidator(_listify)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSpecError(ValidationFailed):
    """A spec that cannot be used; ``errors`` holds one located line per fault."""

    code = "INVALID_PROVIDER_SPEC"

    def __init__(self, source: str, errors: list[str]) -> None:
        lines = "\n".join(f"  - {line}" for line in errors)
        super().__init__(f"invalid provider spec {source}:\n{lines}", details={"errors": errors})
        self.source = source
        self.errors = errors


class AuthSpec(_Spec):
    """How the key is sent, and where it comes from when no override is given."""

    type: Literal["bearer", "header", "query", "none"] = "bearer"
    header: str | None = None
    prefix: str = ""
    param: str | None = None
    # First set wins; a key stored in the database or passed explicitly overrides them all.
    key_env: StrList = Field(default_factory=list)
    # Local OpenAI-compatible servers (Ollama, llama.cpp) take no key.
    optional_with_custom_base_url: bool = False

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.type == "header" and not self.header:
            raise ValueError("auth.type 'header' needs auth.header (the header name)")
        if self.type == "query" and not self.param:
            raise ValueError("auth.type 'query' needs auth.param (the query parameter)")
        return self


class LimitsSpec(_Spec):
    max_in_flight: int = Field(32, ge=1, description="concurrent HTTP requests")
    requests_per_second: float | None = Field(None, gt=0)
    burst: int | None = Field(None, ge=1)
    timeout: float = Field(30.0, gt=0, description="seconds per HTTP request, body included")
    max_response_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    retries: int = Field(3, ge=0, le=20, description="extra tries of a retryable request")
    retry_base_delay: float = Field(1.0, gt=0)
    retry_max_delay: float = Field(30.0, gt=0)
    failure_threshold: int = Field(5, ge=1, description="consecutive failures opening the circuit")
    cooldown: float = Field(30.0, gt=0, description="seconds the circuit stays open")


class EnvelopeSpec(_Spec):
    """An HTTP 200 whose body carries the real status (Kie.ai: ``{"code": 402, "msg": ...}``)."""

    code_path: PathStr
    ok: list[int] = Field(default_factory=lambda: [200])
    message_path: PathStr | None = None


class ErrorsSpec(_Spec):
    # What the provider's statuses mean to a person (gen-api 402: top up the balance).
    messages: dict[int, str] = Field(default_factory=dict)
    paths: PathList = Field(default_factory=lambda: list(DEFAULT_ERROR_PATHS))
    retryable: list[int] = Field(default_factory=list)
    permanent: list[int] = Field(default_factory=list)
    # path -> values: an error answer holding one of them is permanent whatever its status
    # (OpenAI's 429 "insufficient_quota" is an empty account, not a rate limit).
    permanent_if: dict[PathStr, list[str]] = Field(default_factory=dict)
    envelope: EnvelopeSpec | None = None

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        both = sorted(set(self.retryable) & set(self.permanent))
        if both:
            raise ValueError(f"statuses listed as both retryable and permanent: {both}")
        return self


Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class RequestSpec(_Spec):
    """One HTTP request; ``path`` is under the base URL, ``url`` is absolute (a template)."""

    method: Method = "GET"
    path: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    response: Literal["json", "binary", "none"] = "json"

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of 'path' (under base_url) or 'url' (absolute)")
        if self.path is not None and not (self.path.startswith("/") or self.path == ""):
            raise ValueError(f"path must start with '/': {self.path!r}")
        return self

    def template(self) -> dict[str, Any]:
        """Everything that is templated, for placeholder checks."""
        return {
            "path": self.path or self.url,
            "headers": self.headers,
            "query": self.query,
            "body": self.body,
        }


class SubmitSpec(RequestSpec):
    method: Method = "POST"
    task_id: PathStr | None = None
    # name -> path in the submit answer; kept in ProviderState.data as {{state.name}}.
    save: dict[str, PathStr] = Field(default_factory=dict)
    # Headers sent only when a caller waits for the answer (sync priority), e.g. Replicate's
    # ``Prefer: wait``: holding batch submits open would widen the window in which a worker
    # that dies has paid for a task it never recorded.
    urgent_headers: dict[str, str] = Field(default_factory=dict)


class PollSpec(RequestSpec):
    initial_interval: float = Field(1.0, gt=0)
    interval: float = Field(5.0, gt=0)
    max_interval: float = Field(30.0, gt=0)
    backoff: float = Field(1.5, ge=1.0)
    jitter: float = Field(0.1, ge=0, le=1)
    max_wait: float = Field(600.0, gt=0)
    not_found_grace: int = Field(0, ge=0, description="404s tolerated while the task is fresh")
    max_errors: int = Field(5, ge=1, description="consecutive failed polls before giving up")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.initial_interval <= self.interval <= self.max_interval:
            raise ValueError(
                "poll intervals must satisfy initial_interval <= interval <= max_interval "
                f"(got {self.initial_interval}, {self.interval}, {self.max_interval})"
            )
        return self


class StatusSpec(_Spec):
    path: PathStr
    running: StrList = Field(default_factory=list)
    success: StrList
    failed: StrList = Field(default_factory=list)
    cancelled: StrList = Field(default_factory=list)
    # A "done" answer that holds a value here failed after all (fal: COMPLETED + error).
    failed_when: PathList = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        seen: dict[str, str] = {}
        for group in ("running", "success", "failed", "cancelled"):
            for value in getattr(self, group):
                key = value.strip().lower()
                if key in seen and seen[key] != group:
                    raise ValueError(f"status {value!r} is both {seen[key]} and {group}")
                seen[key] = group
        return self


class ResultSpec(_Spec):
    kind: ResultKind = "file"
    paths: PathList = Field(default_factory=list)
    # text outputs: also parse the text as JSON into ModelOutput.data when it is JSON.
    also_json: bool = False


class PriceSpec(_Spec):
    currency: str = "USD"
    per_call: float | None = Field(None, ge=0)
    per_unit: float | None = Field(None, ge=0)
    # Per file stored from the answer: what was kept is what is charged, whatever number of
    # outputs was asked for (a provider's filter may drop some).
    per_file: float | None = Field(None, ge=0)
    unit: str | None = Field(None, description="variable counting the units (duration, n)")
    unit_path: PathStr | None = Field(None, description="or a path in the final answer")

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        rules = (self.per_call, self.per_unit, self.per_file)
        if sum(rule is not None for rule in rules) != 1:
            raise ValueError("price needs exactly one of per_call, per_unit or per_file")
        if self.per_unit is not None and (self.unit is None) == (self.unit_path is None):
            raise ValueError("price.per_unit needs exactly one of unit or unit_path")
        return self


InputType = Literal[
    "string", "number", "integer", "boolean", "file", "files", "object", "array", "any"
]


class InputSpec(_Spec):
    # "any": no type check (models converted from seed 003's AIModel, whose placeholders
    # carry no types); file values still arrive as URLs the provider can fetch.
    type: InputType = "string"
    description: str = ""
    enum: list[Any] | None = None


class IdempotencySpec(_Spec):
    header: str | None = None
    body_field: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.header is None) == (self.body_field is None):
            raise ValueError("idempotency needs exactly one of header or body_field")
        return self


class CallbackSpec(_Spec):
    """How a provider calls back when a task is done, instead of waiting for the next poll.

    The submit request carries a per-step URL (``conveyor.providers.callbacks``) in
    ``url_field`` of the body or the query; ``also_send`` adds the provider's companion fields
    (Replicate's ``webhook_events_filter``). ``verify`` names the provider's signature scheme,
    checked when its secret (``secret_env``) is set; the URL's own signed token is checked
    always. ``task_id`` and ``status`` read the callback body (``status`` defaults to the
    model's own mapping). Polling goes on, slower, as the safety net: every
    ``safety_interval`` seconds (default: 4 × the poll ``interval``).
    """

    url_field: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
    url_in: Literal["body", "query"] = "body"
    also_send: dict[str, Any] = Field(default_factory=dict)
    verify: Literal["kie-hmac", "standard-webhooks", "url-token"] = "url-token"
    secret_env: StrList = Field(default_factory=list)
    task_id: PathList
    status: StatusSpec | None = None
    # Seconds a provider's signed timestamp may differ from ours before the call is refused.
    tolerance: float = Field(300.0, gt=0, le=3600)
    # The pause between safety-net polls while a callback is awaited; None: 4 × interval.
    safety_interval: float | None = Field(None, gt=0, le=3600)

    @model_validator(mode="after")
    def _secret_named(self) -> Self:
        if self.verify != "url-token" and not self.secret_env:
            raise ValueError(
                f"callback.verify {self.verify!r} needs secret_env (where the provider's "
                "signing secret comes from)"
            )
        if self.also_send and self.url_in != "body":
            raise ValueError("callback.also_send adds body fields: it needs url_in 'body'")
        return self


class ModelSpec(_Spec):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
    kind: ModelKind
    title: str
    description: str = ""
    pros: list[str] = Field(default_factory=list)
    cons: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    price: PriceSpec | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    # variable -> environment variable whose value replaces the default (model names).
    env_defaults: dict[str, str] = Field(default_factory=dict)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    mode: Literal["async", "sync"] = "async"
    submit: SubmitSpec
    poll: PollSpec | None = None
    status: StatusSpec | None = None
    result: ResultSpec = Field(default_factory=ResultSpec)
    error: PathList = Field(default_factory=list)
    # Where a failed task gives its own code (Kie's failCode); shown with the message.
    error_code: PathList = Field(default_factory=list)
    fetch_result: RequestSpec | None = None
    cancel: RequestSpec | None = None
    idempotency: IdempotencySpec | None = None
    callback: CallbackSpec | None = None
    # False: listed, but not callable (seed 003's ``is_active``).
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        faults: list[str] = []
        if self.mode == "async":
            for name in ("poll", "status"):
                if getattr(self, name) is None:
                    faults.append(f"async models need '{name}'")
            if self.submit.task_id is None:
                faults.append("async models need submit.task_id (where the task id is)")
        elif self.poll is not None or self.fetch_result is not None:
            faults.append("sync models take their result from the submit answer: drop poll")
        binary = self.submit.response == "binary" or (
            self.fetch_result is not None and self.fetch_result.response == "binary"
        )
        if binary and self.result.kind != "file":
            faults.append("a binary answer can only be a 'file' result")
        if self.callback is not None and self.mode != "async":
            faults.append("callback: only async models are called back")
        if not binary and not self.result.paths:
            faults.append("result.paths is empty: say where the output is")
        faults.extend(self._template_faults())
        if faults:
            # One line per fault; ``_describe`` locates each of them.
            raise ValueError("\n".join(faults))
        return self

    def variables(self) -> set[str]:
        """The variables a submit template can rely on: inputs, defaults, built-ins."""
        return {*self.inputs, *self.defaults, *self.env_defaults, *BUILTIN_VARIABLES}

    def _template_faults(self) -> list[str]:
        faults: list[str] = []
        given = self.variables()
        for item in placeholders(self.submit.template()):
            if item.root in AFTER_SUBMIT_VARIABLES:
                faults.append(f"submit cannot use {item!r}: it exists only after submitting")
            elif item.root not in given:
                faults.append(self._never_given("submit", item))
        later = {"poll": self.poll, "fetch_result": self.fetch_result, "cancel": self.cancel}
        for where, request in later.items():
            if request is None:
                continue
            for item in placeholders(request.template()):
                if item.root not in given | AFTER_SUBMIT_VARIABLES:
                    faults.append(self._never_given(where, item))
                elif item.root == "state":
                    key = item.name.split(".", 2)[1] if "." in item.name else ""
                    if key not in self.submit.save:
                        faults.append(
                            f"{where} uses {item!r} but submit.save has no {key!r} "
                            f"(saved: {sorted(self.submit.save) or 'nothing'})"
                        )
        return faults

    def _never_given(self, where: str, item: Placeholder) -> str:
        declared = ", ".join(sorted({*self.inputs, *self.defaults, *self.env_defaults}))
        return (
            f"{where} uses {item!r} but the model never gets {item.root!r}: declare it under "
            f"inputs or give it a default (the model has: {declared or 'nothing'})"
        )


class ProviderSpec(_Spec):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    docs: str = Field(description="URL of the provider documentation this spec follows")
    base_url: str = Field(pattern=r"^https?://")
    base_url_env: str | None = None
    simulate_path: str | None = Field(None, pattern=r"^/")
    auth: AuthSpec = Field(default_factory=AuthSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    errors: ErrorsSpec = Field(default_factory=ErrorsSpec)
    headers: dict[str, str] = Field(default_factory=dict)
    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_common(cls, data: Any) -> Any:
        # ``common`` holds what every model shares (poll, status, error...); a model's own
        # values win. Merged before validation so locations still name the model.
        if not isinstance(data, Mapping) or "common" not in data:
            return data
        data = dict(data)
        common = data.pop("common") or {}
        if not isinstance(common, Mapping):
            raise ValueError("common must be a mapping of model fields")
        models = data.get("models")
        if isinstance(models, list):
            data["models"] = [
                _deep_merge(common, m) if isinstance(m, Mapping) else m for m in models
            ]
        return data

    @model_validator(mode="after")
    def _ids(self) -> Self:
        seen: set[str] = set()
        for model in self.models:
            if not model.id.startswith(f"{self.name}/"):
                raise ValueError(f"model id {model.id!r} must start with '{self.name}/'")
            if model.id in seen:
                raise ValueError(f"model id {model.id!r} appears twice")
            seen.add(model.id)
        return self

    def model(self, model_id: str) -> ModelSpec:
        for model in self.models:
            if model.id == model_id:
                return model
        raise KeyError(model_id)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_spec(data: Any, *, source: str = "<spec>") -> ProviderSpec:
    """Validate a decoded spec; raise ``ProviderSpecError`` listing every fault."""
    if not isinstance(data, Mapping):
        raise ProviderSpecError(source, [f"expected a mapping, got {type(data).__name__}"])
    try:
        return ProviderSpec.model_validate(data)
    except ValidationError as exc:
        raise ProviderSpecError(source, _describe(exc, data)) from None


class _SpecLoader(yaml.SafeLoader):
    """YAML without aliases: ``*a`` repeated inside ``*b`` would make a few hundred bytes
    of text expand into billions of values once validated."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            alias: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
            where = alias.start_mark
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not allowed in a provider spec",
                problem_mark=where if isinstance(where, yaml.Mark) else None,
            )
        return super().compose_node(parent, index)


def read_spec_yaml(text: str, *, source: str = "<spec>") -> Any:
    """Decode YAML (or JSON) text; a syntax fault is a ``ProviderSpecError``."""
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ProviderSpecError(source, [f"not valid YAML: {exc}"]) from None


def parse_spec_text(text: str, *, source: str = "<spec>") -> ProviderSpec:
    """Parse YAML (or JSON) text into a ``ProviderSpec``."""
    return parse_spec(read_spec_yaml(text, source=source), source=source)


def load_spec_file(path: str | Path) -> ProviderSpec:
    """Read and validate one spec file (blocking; ``load_specs`` runs it off the loop)."""
    file = Path(path)
    return parse_spec_text(file.read_text(encoding="utf-8"), source=file.name)


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    models = data.get("models")
    for error in exc.errors():
        loc = list(error["loc"])
        parts: list[str] = []
        for i, item in enumerate(loc):
            if isinstance(item, int):
                parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
                if i == 1 and loc[0] == "models" and isinstance(models, list):
                    model = models[item] if item < len(models) else None
                    if isinstance(model, Mapping) and model.get("id"):
                        parts[-1] += f" {model['id']}:"
            else:
                parts.append(str(item))
        where = ".".join(parts).replace(":.", ": ").removesuffix(":") or "spec"
        message = str(error["msg"]).removeprefix("Value error, ")
        got = error.get("input")
        suffix = ""
        if error["type"] not in ("missing", "value_error") and not isinstance(got, dict | list):
            suffix = f" (got {got!r})"
        lines.extend(f"{where}: {line}{suffix}" for line in message.split("\n"))
    return lines
