"""Reading values out of provider answers: a tiny path language and the extractors on it.

A path names one place in a JSON answer::

    result[0]                       key, then list index (negative counts from the end)
    full_response[0].url            keys are separated by dots
    data.resultJson|json.resultUrls JSON inside a string: ``|json`` parses it, then go on
    images[*].url                   every element: the value becomes a list
    ["key.with.dots"]               a quoted key, for names with ``.``, ``[`` or ``|``
    $                               the whole answer (also the empty path)

A path that does not match gives ``MISSING`` rather than an error, so a spec can list
several candidates (``result[0]`` then ``full_response[0].url``) and take the first that
holds something. ``|json`` also accepts a value that is already parsed, and JSON wrapped
in a Markdown code fence, which chat models like to add.

``StatusMapper`` turns a status field into running / success / failed (anything else is
``unknown``, and the caller keeps polling); ``ResultExtractor`` finds the output by kind;
``ErrorExtractor`` finds a human message in an error answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "MISSING",
    "ErrorExtractor",
    "Extracted",
    "PathSyntaxError",
    "ResultExtractor",
    "ResultKind",
    "StatusMapper",
    "TaskState",
    "ValuePath",
    "has_value",
    "message_text",
    "parse_json_text",
    "parse_path",
]

ResultKind = Literal["file", "files", "text", "json"]
TaskState = Literal["running", "success", "failed", "cancelled", "unknown"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final[Any] = _Missing()


class PathSyntaxError(ValueError):
    """A path that cannot be parsed; the message names the position."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        super().__init__(f"bad path {text!r} at position {position}: {reason}")
        self.text = text
        self.position = position


@dataclass(frozen=True, slots=True)
class _Key:
    name: str


@dataclass(frozen=True, slots=True)
class _Index:
    index: int


@dataclass(frozen=True, slots=True)
class _Each:
    pass


@dataclass(frozen=True, slots=True)
class _Json:
    pass


_Step = _Key | _Index | _Each | _Json
_PLAIN_KEY = re.compile(r"[^.\[\]|\"']+")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r"\[\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')\s*\]")
_EACH = re.compile(r"\[\s*\*\s*\]")
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def parse_path(text: str) -> ValuePath:
    """Parse ``text``; raise ``PathSyntaxError`` naming the position of the first fault."""
    steps: list[_Step] = []
    source = text.strip()
    pos = 0
    if source in ("", "$"):
        return ValuePath(text, ())
    if source.startswith("$"):
        pos = 1
    expect_key = pos == 0
    while pos < len(source):
        char = source[pos]
        if expect_key and char not in "[|":
            match = _PLAIN_KEY.match(source, pos)
            if not match:
                raise PathSyntaxError(text, pos, "expected a key")
            steps.append(_Key(match.group(0).strip()))
            pos = match.end()
        elif char == ".":
            match = _PLAIN_KEY.match(source, pos + 1)
            if not match:
                raise PathSyntaxError(text, pos + 1, "expected a key after '.'")
            steps.append(_Key(match.group(0).strip()))
            pos = match.end()
        elif char == "[":
            if match := _INDEX.match(source, pos):
                steps.append(_Index(int(match.group(1))))
            elif match := _EACH.match(source, pos):
                steps.append(_Each())
            elif match := _QUOTED.match(source, pos):
                steps.append(_Key(json.loads(_as_double_quoted(match.group(1)))))
            else:
                raise PathSyntaxError(text, pos, 'expected [number], [*] or ["key"]')
            pos = match.end()
        elif char == "|":
            if not source.startswith("|json", pos):
                raise PathSyntaxError(text, pos, "the only filter is |json")
            steps.append(_Json())
            pos += len("|json")
        else:
            raise PathSyntaxError(text, pos, f"unexpected {char!r}")
        expect_key = False
    return ValuePath(text, tuple(steps))


def _as_double_quoted(literal: str) -> str:
    if literal.startswith('"'):
        return literal
    return '"' + literal[1:-1].replace('"', '\\"').replace("\\'", "'") + '"'


def parse_json_text(value: Any) -> Any:
    """``|json``: parse a JSON string (code fences allowed); parsed values pass through."""
    if not isinstance(value, str):
        return value
    text = value
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        return json.loads(text)
    except ValueError:
        return MISSING


@dataclass(frozen=True, slots=True)
class ValuePath:
    """A parsed path; ``get`` answers ``MISSING`` where the answer has nothing."""

    text: str
    steps: tuple[_Step, ...]

    def get(self, data: Any) -> Any:
        return _follow(data, self.steps)

    def __str__(self) -> str:
        return self.text


def _follow(value: Any, steps: Sequence[_Step]) -> Any:
    for position, step in enumerate(steps):
        if value is MISSING:
            return MISSING
        if isinstance(step, _Key):
            value = value.get(step.name, MISSING) if isinstance(value, Mapping) else MISSING
        elif isinstance(step, _Index):
            if isinstance(value, list) and -len(value) <= step.index < len(value):
                value = value[step.index]
            else:
                value = MISSING
        elif isinstance(step, _Json):
            value = parse_json_text(value)
        else:
            if not isinstance(value, list):
                return MISSING
            rest = steps[position + 1 :]
            return [item for item in (_follow(v, rest) for v in value) if item is not MISSING]
    return value


def has_value(value: Any) -> bool:
    """True for anything but MISSING, null, "", [] and {}."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


@dataclass(frozen=True, slots=True)
class Extracted:
    """What ``ResultExtractor`` found: a str (file, text), a list of str (files) or JSON."""

    kind: ResultKind
    value: Any
    path: str


class ResultExtractor:
    """Find the output in a success answer by trying ``paths`` in order."""

    def __init__(self, kind: ResultKind, paths: Iterable[str]) -> None:
        self.kind: ResultKind = kind
        self.paths = [parse_path(p) for p in paths]

    def extract(self, answer: Any) -> Extracted | None:
        for path in self.paths:
            found = self._shape(path.get(answer))
            if found is not None:
                return Extracted(self.kind, found, path.text)
        return None

    def _shape(self, value: Any) -> Any:
        if not has_value(value):
            return None
        if self.kind == "json":
            return value
        if self.kind == "text":
            if isinstance(value, str):
                return value
            return json.dumps(value, ensure_ascii=False)
        items = value if isinstance(value, list) else [value]
        strings = [item for item in items if isinstance(item, str) and item.strip()]
        if not strings:
            return None
        return strings[0] if self.kind == "file" else strings

    def describe(self) -> str:
        return " then ".join(p.text for p in self.paths)


class StatusMapper:
    """Map a provider's status value to a ``TaskState`` (case-insensitive)."""

    def __init__(
        self,
        path: str,
        *,
        running: Iterable[str] = (),
        success: Iterable[str] = (),
        failed: Iterable[str] = (),
        cancelled: Iterable[str] = (),
        failed_when: Iterable[str] = (),
    ) -> None:
        self.path = parse_path(path)
        self.failed_when = [parse_path(p) for p in failed_when]
        self._states: dict[str, TaskState] = {}
        groups: tuple[tuple[TaskState, Iterable[str]], ...] = (
            ("running", running),
            ("success", success),
            ("failed", failed),
            ("cancelled", cancelled),
        )
        for state, values in groups:
            for raw in values:
                self._states[_norm(raw)] = state

    def raw(self, answer: Any) -> str | None:
        value = self.path.get(answer)
        return None if value is MISSING or value is None else str(value)

    def state(self, answer: Any) -> TaskState:
        raw = self.raw(answer)
        state: TaskState = "unknown" if raw is None else self._states.get(_norm(raw), "unknown")
        if state == "success" and any(has_value(p.get(answer)) for p in self.failed_when):
            return "failed"
        return state


def _norm(value: object) -> str:
    return str(value).strip().lower()


class ErrorExtractor:
    """Find a human-readable message at the first of ``paths`` that holds one."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = [parse_path(p) for p in paths]

    def message(self, answer: Any) -> str | None:
        for path in self.paths:
            text = message_text(path.get(answer))
            if text:
                return text
        return None


def message_text(value: Any, *, limit: int = 500) -> str | None:
    """A message from a string, a ``{message|msg|detail|error: ...}`` object or a list."""
    if not has_value(value):
        return None
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, Mapping):
        for key in ("message", "msg", "detail", "error", "description"):
            if has_value(value.get(key)):
                return message_text(value[key], limit=limit)
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        parts = [message_text(item, limit=limit) for item in value]
        text = "; ".join(part for part in parts if part)
    else:
        text = str(value)
    return text[:limit] if text else None
