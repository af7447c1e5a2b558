"""``{{placeholder}}`` templates for provider requests (seed 003's ``request_schema``).

A template is any JSON-like value: dicts, lists, strings, numbers. ``render`` walks it and
substitutes variables in strings, once, in a single pass:

* a string that is exactly one placeholder (``"{{width}}"``) becomes the variable's value
  with its type kept: a number stays a number, a dict stays a dict;
* a string with placeholders inside text (``"Bearer {{key}}"``) stays a string; strings are
  inserted as they are, other values as JSON (``true``, ``8``, ``{"a": 1}``);
* inside a list, an element that is exactly one placeholder whose value is a list is spliced
  in, so ``["{{url}}"]`` is an array whether the caller gave one URL or several;
* ``{{a.b}}`` reads a nested key (or a list index: ``{{urls.0}}``);
* ``{{name?}}`` is optional: when the variable is missing or null, the dict key (or list
  element) holding exactly that placeholder is dropped, and inside text it becomes "";
* ``{"$each": "images", "as": "image", "template": {...}}`` as a list element renders the
  template once per item of ``images`` and splices the results in (``"images?"`` allows the
  list to be missing).

Substituted values are never scanned again, so a prompt containing ``{{x}}`` reaches the
provider verbatim. Dict keys are literal. Every missing variable is reported at once, as a
``ValidationFailed`` listing all their names, before anything is sent anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from conveyor.errors import ValidationFailed

__all__ = [
    "EACH_KEY",
    "Placeholder",
    "TemplateVariablesMissing",
    "placeholders",
    "render",
]

EACH_KEY: Final = "$each"

_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*"
_PLACEHOLDER = re.compile(r"\{\{\s*(" + _NAME + r")\s*(\?)?\s*\}\}")


# "Drop this key/element": an optional variable that has no value.
_OMIT: Final = object()
_MISSING: Final = object()


class TemplateVariablesMissing(ValidationFailed):
    """Raised by ``render`` with every missing variable name in ``missing``."""

    code = "MISSING_VARIABLES"

    def __init__(self, missing: list[str], *, context: str | None = None) -> None:
        where = f" for {context}" if context else ""
        super().__init__(
            f"missing template variables{where}: {', '.join(missing)}",
            details={"missing": missing},
        )
        self.missing = missing


class Placeholder:
    """One ``{{name}}`` occurrence: its dotted name and whether it is optional."""

    __slots__ = ("name", "optional")

    def __init__(self, name: str, optional: bool) -> None:
        self.name = name
        self.optional = optional

    @property
    def root(self) -> str:
        return self.name.split(".", 1)[0]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Placeholder)
            and other.name == self.name
            and other.optional == self.optional
        )

    def __hash__(self) -> int:
        return hash((self.name, self.optional))

    def __repr__(self) -> str:
        return "{{" + self.name + ("?" if self.optional else "") + "}}"


def placeholders(template: Any) -> list[Placeholder]:
    """Every placeholder in ``template`` (names bound by ``$each`` excluded), in order."""
    found: dict[Placeholder, None] = {}
    for item in _walk(template, bound=frozenset()):
        found.setdefault(item, None)
    return list(found)


def _walk(template: Any, bound: frozenset[str]) -> Iterator[Placeholder]:
    if isinstance(template, str):
        for match in _PLACEHOLDER.finditer(template):
            item = Placeholder(match.group(1), match.group(2) == "?")
            if item.root not in bound:
                yield item
    elif isinstance(template, Mapping):
        if EACH_KEY in template:
            source = str(template[EACH_KEY])
            optional = source.endswith("?")
            name = source.rstrip("?").strip()
            if name.split(".", 1)[0] not in bound:
                yield Placeholder(name, optional)
            alias = str(template.get("as", "item"))
            yield from _walk(template.get("template"), bound | {alias})
            return
        for value in template.values():
            yield from _walk(value, bound)
    elif isinstance(template, list | tuple):
        for value in template:
            yield from _walk(value, bound)


def render(template: Any, variables: Mapping[str, Any], *, context: str | None = None) -> Any:
    """Substitute ``variables`` into ``template``; raise listing every missing name."""
    missing: dict[str, None] = {}
    result = _render(template, variables, missing)
    if missing:
        raise TemplateVariablesMissing(list(missing), context=context)
    return None if result is _OMIT else result


def _lookup(variables: Mapping[str, Any], name: str) -> Any:
    value: Any = variables
    for part in name.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list | tuple) and _is_index(part, len(value)):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _is_index(part: str, length: int) -> bool:
    return part.lstrip("-").isdigit() and -length <= int(part) < length


def _resolve(
    name: str, optional: bool, variables: Mapping[str, Any], missing: dict[str, None]
) -> Any:
    value = _lookup(variables, name)
    if value is _MISSING or value is None:
        if optional:
            return _OMIT
        if value is _MISSING:
            missing.setdefault(name, None)
            return _OMIT
    return value


def _as_text(value: Any) -> str:
    if value is _OMIT or value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _render_string(text: str, variables: Mapping[str, Any], missing: dict[str, None]) -> Any:
    whole = _PLACEHOLDER.fullmatch(text)
    if whole:
        return _resolve(whole.group(1), whole.group(2) == "?", variables, missing)

    def substitute(match: re.Match[str]) -> str:
        return _as_text(_resolve(match.group(1), match.group(2) == "?", variables, missing))

    # re.sub never rescans replacement text: a value holding "{{x}}" is left as it is.
    return _PLACEHOLDER.sub(substitute, text)


def _render(template: Any, variables: Mapping[str, Any], missing: dict[str, None]) -> Any:
    if isinstance(template, str):
        return _render_string(template, variables, missing)
    if isinstance(template, Mapping):
        rendered: dict[str, Any] = {}
        for key, value in template.items():
            out = _render(value, variables, missing)
            if out is not _OMIT:
                rendered[key] = out
        return rendered
    if isinstance(template, list | tuple):
        items: list[Any] = []
        for element in template:
            if isinstance(element, Mapping) and EACH_KEY in element:
                items.extend(_render_each(element, variables, missing))
                continue
            out = _render(element, variables, missing)
            if out is _OMIT:
                continue
            whole = isinstance(element, str) and _PLACEHOLDER.fullmatch(element)
            if whole and isinstance(out, list | tuple):
                items.extend(out)
                continue
            items.append(out)
        return items
    return template


def _render_each(
    element: Mapping[str, Any], variables: Mapping[str, Any], missing: dict[str, None]
) -> list[Any]:
    source = str(element[EACH_KEY])
    optional = source.endswith("?")
    values = _resolve(source.rstrip("?").strip(), optional, variables, missing)
    if values is _OMIT:
        return []
    if not isinstance(values, list | tuple):
        values = [values]
    alias = str(element.get("as", "item"))
    body = element.get("template")
    out: list[Any] = []
    for value in values:
        scoped = {**variables, alias: value}
        rendered = _render(body, scoped, missing)
        if rendered is not _OMIT:
            out.append(rendered)
    return out
