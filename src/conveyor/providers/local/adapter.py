"""One ``ModelAdapter`` for every local model, and the registry that builds them.

``LocalModelAdapter`` does the asynchronous half of a local call: it checks availability,
validates the inputs against the model's fields, reads file inputs through ``AssetIO``,
sends the engine entry point with plain bytes and values to the worker's process pool
(``CpuRunner``, under the model's limiter), stores the files the engine made, and turns
engine errors into provider errors:

    EngineInputError, EngineFailure          raised as they are (permanent)
    EngineUnavailable                        ModelUnavailable; EngineBroken also marks the
                                             model unavailable from then on
    EngineProcessDied (from the pool)        raised as it is (retryable): a worker process
                                             died, maybe for another item
    any other exception, MemoryError         EngineFailure (permanent)

Messages do not repeat the model id: the step that called the model names it.

Local engines never submit anything remote, so ``resume`` and ``checkpoint`` are unused: a
resumed step simply runs again.
"""

from __future__ import annotations

from typing import Any

from conveyor.errors import ConveyorError
from conveyor.providers.base import (
    Availability,
    Checkpoint,
    CpuRunner,
    FileInput,
    ModelAdapter,
    ModelCall,
    ModelKind,
    ModelOutput,
    ProviderState,
)
from conveyor.providers.errors import ModelUnavailable, ProviderCancelled
from conveyor.providers.local.catalogue import local_models
from conveyor.providers.local.engine import (
    EngineBroken,
    EngineFailure,
    EngineInputError,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
)
from conveyor.providers.local.model_spec import InputInvalid, LocalModelSpec

PROVIDER = "local"
# Largest file input read into memory for an engine (the bomb limit guards decoding).
DEFAULT_MAX_INPUT_BYTES = 50 * 1024 * 1024


class LocalModelAdapter:
    """Runs one local model (``spec``) in the process pool behind ``cpu``."""

    # Nothing is paid for: running the same call again costs only CPU.
    remote = False

    def __init__(
        self,
        spec: LocalModelSpec,
        cpu: CpuRunner,
        *,
        options: EngineOptions | None = None,
        max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    ) -> None:
        self.spec = spec
        self.model_id: str = spec.id
        self.kind: ModelKind = spec.kind
        self._cpu = cpu
        self._options = options or EngineOptions()
        self._max_input_bytes = max_input_bytes
        self._availability: Availability | None = None

    def availability(self) -> Availability:
        """Whether the engine can run here; probed once, then remembered."""
        if self._availability is None:
            try:
                self._availability = self.spec.probe()
            except Exception as exc:  # a probe must never take the catalogue down
                self._availability = Availability(False, f"engine check failed: {exc}", None)
        return self._availability

    def catalogue_entry(self) -> dict[str, Any]:
        """The catalogue's data for this model, with its availability."""
        entry = self.spec.as_dict()
        found = self.availability()
        entry["available"] = found.available
        entry["unavailable_reason"] = found.reason
        entry["enable_with"] = found.enable_with
        return entry

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        if call.is_cancelled():
            raise ProviderCancelled("cancelled before the engine started", provider=PROVIDER)
        found = self.availability()
        if not found.available:
            raise ModelUnavailable(
                _unavailable_message(found.reason, found.enable_with), provider=PROVIDER
            )
        try:
            values = self.spec.validate(call.inputs)
        except InputInvalid as exc:
            raise EngineInputError(str(exc), provider=PROVIDER) from exc
        for name, value in list(values.items()):
            if isinstance(value, FileInput):
                values[name] = await call.files.read(value, max_bytes=self._max_input_bytes)
        result = await self._run_engine(values)
        if call.is_cancelled():
            raise ProviderCancelled("cancelled while the engine ran", provider=PROVIDER)
        stored = [
            await call.files.store(f.data, mime_type=f.mime_type, filename=f.filename)
            for f in result.files
        ]
        return ModelOutput(text=result.text, data=result.data, files=stored, cost=0.0)

    async def _run_engine(self, values: dict[str, Any]) -> EngineResult:
        try:
            return await self._cpu.run(self.spec.limiter, self.spec.engine, values, self._options)
        except EngineUnavailable as exc:
            if isinstance(exc, EngineBroken):
                # Found only now (a corrupt model file): unavailable for every call from here.
                self._availability = Availability(False, exc.message, exc.enable_with)
            raise ModelUnavailable(
                _unavailable_message(exc.message, exc.enable_with), provider=PROVIDER
            ) from exc
        except ConveyorError:
            # Engine errors and a dead pool process carry their own retryability.
            raise
        except MemoryError as exc:
            raise EngineFailure(
                "the engine ran out of memory on this input", provider=PROVIDER
            ) from exc
        except Exception as exc:
            # An engine bug on an odd input is still this item's failure, never the worker's.
            raise EngineFailure(
                f"engine error {type(exc).__name__}: {exc}", provider=PROVIDER
            ) from exc


def _unavailable_message(reason: str | None, enable_with: str | None) -> str:
    message = f"unavailable: {reason or 'engine missing'}"
    return f"{message} (to enable: {enable_with})" if enable_with else message


def local_adapters(cpu: CpuRunner, *, options: EngineOptions | None = None) -> list[ModelAdapter]:
    """An adapter for every local model, sharing ``cpu``; missing engines show as unavailable."""
    return [LocalModelAdapter(spec, cpu, options=options) for spec in local_models(options)]
