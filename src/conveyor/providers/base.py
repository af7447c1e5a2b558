"""The port every model is called through, remote or local.

A *model adapter* turns one ``ModelCall`` into a ``ModelOutput``. Remote adapters submit a
task, hand its id to ``checkpoint`` (the caller commits it before any poll, so a resumed
step polls instead of submitting again) and poll until the provider is done. Local adapters
run an engine in the worker's process pool. Neither knows about jobs or the database: files
come and go through ``AssetIO``, CPU work through ``CpuRunner``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")

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


@dataclass(slots=True)
class ModelCall:
    model_id: str
    inputs: dict[str, Any]
    idempotency_key: str
    files: AssetIO
    is_cancelled: Callable[[], bool] = lambda: False


@dataclass(slots=True)
class ModelOutput:
    text: str | None = None
    data: Any = None
    files: list[StoredFile] = field(default_factory=list)
    cost: float | None = None
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
