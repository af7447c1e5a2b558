"""What a local model accepts and what the catalogue shows about it, as plain data.

``InputField`` describes one input (type, default, limits) and coerces a client's value
into it, with a message that names the field when it does not fit; forms send booleans
and numbers as text, so those are accepted too. ``LocalModelSpec`` bundles a model's
catalogue facts with its fields, the engine entry point that runs in a worker process,
the limiter it runs under, and the probe that says whether it can run here.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from conveyor.providers.base import Availability, FileInput, ModelKind
from conveyor.providers.local.engine import EngineOptions, EngineResult

FieldType = Literal["string", "choice", "integer", "number", "boolean", "file", "languages"]
Engine = Callable[[dict[str, Any], EngineOptions], EngineResult]


@dataclass(frozen=True, slots=True)
class EngineEntry:
    """An engine's ``run`` named by its module, imported on the first call.

    The pool pickles it by value (module name and function name), so the module and what
    it needs (numpy, Pillow, OpenCV, onnxruntime) load in the pool's process, never in the
    API's or the worker's main process, whose memory stays small.
    """

    module: str
    function: str = "run"

    def __call__(self, inputs: dict[str, Any], options: EngineOptions) -> EngineResult:
        entry: Engine = getattr(importlib.import_module(self.module), self.function)
        return entry(inputs, options)


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class InputInvalid(ValueError):
    """An input value that does not fit its field."""


@dataclass(frozen=True, slots=True)
class InputField:
    name: str
    type: FieldType
    description: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None

    def coerce(self, value: Any) -> Any:
        """The value in the field's type, or ``InputInvalid`` saying what is wrong."""
        kind = self.type
        if kind == "file":
            return _file(self.name, value)
        if kind == "boolean":
            return _boolean(self.name, value)
        if kind in ("integer", "number"):
            return self._number(value)
        if kind == "languages":
            if isinstance(value, str) or (
                isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
            ):
                return value
            raise InputInvalid(f"'{self.name}' must be a string or a list of language codes")
        if not isinstance(value, str):
            raise InputInvalid(f"'{self.name}' must be a string")
        if kind == "choice":
            normalised = value.strip().lower()
            if normalised not in self.choices:
                raise InputInvalid(
                    f"'{self.name}' must be one of {', '.join(self.choices)}; got '{value}'"
                )
            return normalised
        if self.max_length is not None and len(value) > self.max_length:
            raise InputInvalid(
                f"'{self.name}' is {len(value):,} characters; the limit is {self.max_length:,}"
            )
        return value

    def _number(self, value: Any) -> int | float:
        if isinstance(value, bool):
            raise InputInvalid(f"'{self.name}' must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise InputInvalid(f"'{self.name}' must be a number; got {value!r}") from exc
        if not math.isfinite(number):
            raise InputInvalid(f"'{self.name}' must be a finite number")
        if self.type == "integer":
            if number != int(number):
                raise InputInvalid(f"'{self.name}' must be a whole number")
            number = int(number)
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            raise InputInvalid(
                f"'{self.name}' must be between {self.minimum:g} and {self.maximum:g}"
            )
        return number

    def as_dict(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "required": self.required,
        }
        if self.default is not None:
            described["default"] = self.default
        if self.choices:
            described["choices"] = list(self.choices)
        if self.minimum is not None:
            described["minimum"] = self.minimum
        if self.maximum is not None:
            described["maximum"] = self.maximum
        if self.max_length is not None:
            described["max_length"] = self.max_length
        described["description"] = self.description
        return described


def _file(name: str, value: Any) -> FileInput | bytes:
    if isinstance(value, FileInput | bytes):
        return value
    if isinstance(value, Mapping) and (value.get("asset_id") or value.get("url")):
        return FileInput(
            asset_id=value.get("asset_id"), url=value.get("url"), mime_type=value.get("mime_type")
        )
    raise InputInvalid(f"'{name}' must be a file (an uploaded asset or a URL)")


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    # Multipart forms (seed 004's enhance=true) send booleans as text.
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputInvalid(f"'{name}' must be true or false; got {value!r}")


@dataclass(frozen=True, slots=True)
class LocalModelSpec:
    id: str
    kind: ModelKind
    title: str
    description: str
    pros: tuple[str, ...]
    cons: tuple[str, ...]
    tags: tuple[str, ...]
    inputs: tuple[InputField, ...]
    # Name of the CpuRunner limiter; ``concurrency`` is how many calls make sense at once.
    limiter: str
    concurrency: int
    engine: Engine
    probe: Callable[[], Availability]
    license: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def validate(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Declared inputs, coerced, with defaults filled in; unknown keys are dropped."""
        values: dict[str, Any] = {}
        for spec in self.inputs:
            value = inputs.get(spec.name)
            if value is None:
                if spec.required:
                    raise InputInvalid(f"'{spec.name}' is required")
                if spec.default is not None:
                    values[spec.name] = spec.default
                continue
            values[spec.name] = spec.coerce(value)
        return values

    def as_dict(self) -> dict[str, Any]:
        """Everything the catalogue shows about the model, as JSON-ready data."""
        return {
            "id": self.id,
            "kind": self.kind,
            "provider": "local",
            "title": self.title,
            "description": self.description,
            "pros": list(self.pros),
            "cons": list(self.cons),
            "tags": list(self.tags),
            "license": self.license,
            "price": 0.0,
            "spec": {
                "inputs": [f.as_dict() for f in self.inputs],
                "limiter": self.limiter,
                "concurrency": self.concurrency,
                # Callables are facts found at render time (is the extra installed now?).
                **{key: value() if callable(value) else value for key, value in self.extra.items()},
            },
        }
