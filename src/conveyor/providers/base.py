"""The port every model is called through, remote or local.

A *model adapter* turns one ``ModelCall`` into a ``ModelOutput``. Remote adapters submit a
task, hand its id to ``checkpoint`` (the caller commits it before any poll, so a resumed
step polls instead of submitting again) and poll until the provider is done, waiting between
polls through ``ModelCall.pause``: the engine's pause returns early when the provider calls
back (``callback_url``) to say the task may be done. Local adapters
run an engine in the worker's process pool. Neither knows about jobs or the database: files
come and go through ``AssetIO``, CPU work through ``CpuRunner``.

A remote adapter may also be *pollable* (``PollableAdapter``): it hands the caller a
``TaskWait`` after the submit instead of polling itself, and answers one poll at a time.
The engine then keeps thousands of waiting tasks as small records in one scheduler, not as
thousands of suspended coroutine chains.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")

# The currency of a cost that names none (a price spec's default).
DEFAULT_CURRENCY = "USD"

ModelKind = Literal["image", "video", "audio", "text", "vision", "translate", "background"]


@dataclass(frozen=True, slots=True)
class FileInput:
    """A file given to a model: a stored asset, or an external URL Conveyor already vetted."""

    asset_id: str | None = None
    url: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file a model produced, already stored as an asset."""

    asset_id: str
    mime_type: str
    size: int
    sha256: str


class AssetIO(Protocol):
    """Reading inputs and storing outputs, provided by the jobs layer."""

    async def read(self, file: FileInput, *, max_bytes: int | None = None) -> bytes: ...

    async def url_for(self, file: FileInput) -> str:
        """A URL a remote provider can fetch: http(s) where possible, else a ``data:`` URL."""
        ...

    async def store(
        self, data: bytes, *, mime_type: str | None = None, filename: str | None = None
    ) -> StoredFile:
        """Store bytes; the MIME type is sniffed from the content, ``mime_type`` is a hint."""
        ...

    async def store_from_url(self, url: str) -> StoredFile:
        """Download (SSRF-checked, size-limited) and store; ``data:`` URLs are decoded."""
        ...


class CpuRunner(Protocol):
    """Runs picklable CPU-bound callables in the worker's process pool."""

    async def run(self, limiter: str, fn: Callable[..., T], /, *args: Any) -> T: ...


@dataclass(frozen=True, slots=True)
class ProviderState:
    """What a remote provider gave back on submit; enough to poll, fetch and cancel later."""

    external_task_id: str
    data: dict[str, Any] = field(default_factory=dict)


Pause = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class ModelCall:
    model_id: str
    inputs: dict[str, Any]
    idempotency_key: str
    files: AssetIO
    is_cancelled: Callable[[], bool] = lambda: False
    # A caller waits for this answer (sync priority): a provider may hold the submit open
    # for it (Replicate's ``Prefer: wait``); batch work never asks it to.
    urgent: bool = False
    # Where the provider may call back when the task is done (a model that declares
    # ``callback:`` sends it with the submit); None: polling alone.
    callback_url: str | None = None
    # How to wait between polls; None: the adapter's clock. The engine's pause ends early
    # when a callback for this step arrives.
    pause: Pause | None = None


@dataclass(slots=True)
class ModelOutput:
    text: str | None = None
    data: Any = None
    files: list[StoredFile] = field(default_factory=list)
    # What the call was charged; None when its price is unknown (never a guessed 0.0).
    cost: float | None = None
    # The currency of ``cost``; None means ``DEFAULT_CURRENCY``.
    currency: str | None = None
    # Set by the runner: which model in a fallback chain produced it.
    model_id: str | None = None
    # Set by the runner: an earlier identical step's output, taken without calling a model.
    reused: bool = False


@dataclass(frozen=True, slots=True)
class Availability:
    available: bool
    reason: str | None = None
    # The setting or install step that would make the model available.
    enable_with: str | None = None


Checkpoint = Callable[[ProviderState], Awaitable[None]]


@dataclass(slots=True)
class TaskWait:
    """A submitted task a caller waits on. ``pause`` is how long to wait before the next
    poll (the adapter updates it after each), ``deadline`` the ``monotonic()`` time after
    which the task is given up; ``handle`` is the adapter's own (what a poll needs)."""

    state: ProviderState
    pause: float
    deadline: float
    handle: Any = None


@dataclass(frozen=True, slots=True)
class PollResult:
    """One poll: not final yet, or final with the answer to ``collect`` or the error."""

    final: bool
    answer: Any = None
    error: Exception | None = None


class ModelAdapter(Protocol):
    model_id: str
    kind: ModelKind

    def availability(self) -> Availability: ...

    def catalogue_entry(self) -> dict[str, Any]:
        """Catalogue data: id, kind, provider, title, description, pros, cons, tags,
        price, spec (defaults, inputs), available, unavailable_reason, enable_with."""
        ...

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        """Run the call to completion.

        ``resume`` is the state saved by an earlier attempt: poll it, never submit again.
        Raise ``RetryableProviderError`` / ``PermanentProviderError`` / ``ProviderCancelled``.
        """
        ...


class PollableAdapter(ModelAdapter, Protocol):
    """A remote model whose waiting can be driven from outside, one poll at a time."""

    async def begin(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput | TaskWait:
        """Submit (or, with ``resume``, pick up a submitted task): the output if the answer
        is already final, else what to wait on."""
        ...

    async def poll(self, wait: TaskWait) -> PollResult:
        """Ask once; sets ``wait.pause`` for the next time when not final."""
        ...

    async def collect(self, call: ModelCall, state: ProviderState, answer: Any) -> ModelOutput:
        """Fetch and store the result of a final ``PollResult`` of the task ``state``."""
        ...

    def timed_out(self, wait: TaskWait) -> Exception:
        """The error for a task given up at its ``deadline``."""
        ...

    async def cancel(self, wait: TaskWait) -> None:
        """Best effort: tell the provider to stop (the job was cancelled, or timed out)."""
        ...

    def wait_ended(self, wait: TaskWait) -> None:
        """The caller stops waiting on ``wait`` (finished, failed or dropped)."""
        ...
