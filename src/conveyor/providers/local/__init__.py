"""Local engines: real offline generation that runs in the worker's process pool.

Each engine module holds pure, picklable functions (bytes and values in, bytes and data out)
that load their model once per worker process, an entry point ``run(inputs, options)`` and
a ``probe()``. ``catalogue`` describes the models as data; ``adapter`` wraps each one in a
``ModelAdapter``. ``docs/local-engines.md`` says what each engine is, how to install it and
what is not available offline.

Models: ``local/tts``, ``local/u2netp``, ``local/grabcut``, ``local/finish``,
``local/analyze``, ``local/ocr``, ``local/apertium``, ``local/enhance``.
"""

from __future__ import annotations

from conveyor.providers.local.adapter import LocalModelAdapter, local_adapters
from conveyor.providers.local.catalogue import local_models
from conveyor.providers.local.engine import (
    EngineFailure,
    EngineInputError,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    OutputFile,
)
from conveyor.providers.local.model_spec import InputField, LocalModelSpec

__all__ = [
    "EngineFailure",
    "EngineInputError",
    "EngineOptions",
    "EngineResult",
    "EngineUnavailable",
    "InputField",
    "LocalModelAdapter",
    "LocalModelSpec",
    "OutputFile",
    "local_adapters",
    "local_models",
]
