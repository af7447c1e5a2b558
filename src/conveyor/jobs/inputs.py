"""Checking a ``model`` job's items against its models' declared inputs, at submission.

A model declares its inputs (``spec.inputs`` of ``GET /v1/models``): a declarative HTTP
model in its provider spec (type, enum; an input its submit template needs with no default is
required), a local model in its ``InputField``s (type, required, choices, limits). Before a
job is written, every item is held against every model of its fallback chain, so a TTS item
without ``text`` or an image given as ``"mug.jpg"`` is refused with 422 naming each bad field
(``items[3].inputs.text``) instead of being accepted and failing later.

Files are ``{"asset_id": ...}`` or ``{"url": ...}``, alone or in a list. A URL must be
http(s) and pass the fetch policy (``UrlPolicy.check_url`` here; its host's addresses are
checked by ``vet_urls`` before the transaction opens), because a remote model gets the URL as
given: a ``file://`` path or a metadata address must never reach a provider. Whether an
``asset_id`` exists and is the client's is checked by ``JobService.create`` in its
transaction; this module only says where each one is.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from yarl import URL

from conveyor.errors import ValidationFailed
from conveyor.net.errors import FetchError, UrlRefused
from conveyor.net.policy import UrlPolicy
from conveyor.providers.base import ModelAdapter
from conveyor.providers.http import HttpModelAdapter
from conveyor.providers.local.adapter import LocalModelAdapter
from conveyor.providers.local.model_spec import InputField, InputInvalid
from conveyor.providers.spec import InputSpec
from conveyor.providers.template import placeholders

__all__ = [
    "FileRef",
    "InputFault",
    "InputRules",
    "ItemsChecked",
    "UrlVetter",
    "check_model_items",
    "input_rules",
    "invalid_inputs",
    "vet_urls",
]

# At most this many faults are listed; the message says how many there were.
MAX_FAULTS = 50
_FILE_SHAPE = 'a file is {"asset_id": "..."} or {"url": "https://..."}'


@dataclass(frozen=True, slots=True)
class InputFault:
    """One bad field: where it is (``items[3].inputs.text``) and what is wrong."""

    loc: str
    msg: str

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg}


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file an item names, with where it is named."""

    loc: str
    item: int
    asset_id: str | None = None
    url: str | None = None


# A field's check: the problem with a (non-null) value, or None when it fits.
Check = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class FieldRule:
    name: str
    type: str
    required: bool
    check: Check


@dataclass(frozen=True, slots=True)
class InputRules:
    """What one model accepts: its fields, and the other names it reads (defaults it lets a
    client override); any other name is unknown to it."""

    model_id: str
    fields: Mapping[str, FieldRule]
    also_known: frozenset[str] = frozenset()


@dataclass(slots=True)
class ItemsChecked:
    faults: list[InputFault] = field(default_factory=list)
    files: list[FileRef] = field(default_factory=list)
    _named: set[str] = field(default_factory=set)

    def add(self, fault: InputFault) -> None:
        # A field is named once, however many models of the chain (or checks) find it wrong.
        if fault.loc not in self._named:
            self._named.add(fault.loc)
            self.faults.append(fault)


def input_rules(adapter: ModelAdapter) -> InputRules | None:
    """The declared inputs of ``adapter``; None for a model that declares none we can read
    (anything is passed on as given)."""
    if isinstance(adapter, HttpModelAdapter):
        return _http_rules(adapter)
    if isinstance(adapter, LocalModelAdapter):
        return _local_rules(adapter)
    return None


def _http_rules(adapter: HttpModelAdapter) -> InputRules | None:
    model = adapter.model
    if not model.inputs:
        return None
    defaults = set(adapter.defaults) | set(model.env_defaults)
    # An input the submit template needs (a placeholder without ``?``) and nothing fills in.
    needed = {
        item.root
        for item in placeholders(model.submit.template())
        if not item.optional and item.root not in defaults
    }
    fields = {
        name: FieldRule(name, spec.type, name in needed, _http_check(spec))
        for name, spec in model.inputs.items()
    }
    return InputRules(model.id, fields, frozenset(defaults))


def _http_check(spec: InputSpec) -> Check:
    def check(value: Any) -> str | None:
        problem = _type_problem(spec.type, value)
        if problem is None and spec.enum is not None and value not in spec.enum:
            return f"must be one of {', '.join(map(_shown, spec.enum))}; got {_shown(value)}"
        return problem

    return check


def _local_rules(adapter: LocalModelAdapter) -> InputRules:
    fields = {
        f.name: FieldRule(f.name, f.type, f.required, _local_check(f)) for f in adapter.spec.inputs
    }
    return InputRules(adapter.model_id, fields)


def _local_check(spec: InputField) -> Check:
    if spec.type == "file":
        return lambda value: _type_problem("file", value)

    def check(value: Any) -> str | None:
        # The engine's own coercion, so what passes here is what the engine takes.
        try:
            spec.coerce(value)
        except InputInvalid as exc:
            return str(exc).replace(f"'{spec.name}' ", "", 1)
        return None

    return check


def _type_problem(kind: str, value: Any) -> str | None:
    if kind == "file":
        return None if _is_file(value) else f"must be a file: {_FILE_SHAPE}"
    if kind == "files":
        if isinstance(value, list) and all(_is_file(v) for v in value):
            return None
        return f"must be a list of files: {_FILE_SHAPE}"
    fits = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }.get(kind)
    if fits is None or fits(value):
        return None
    return f"must be {_article(kind)}, not {_json_type(value)}"


def _is_file(value: Any) -> bool:
    return _file_fields(value) is not None


def _file_fields(value: Any) -> tuple[str | None, str | None] | None:
    """``(asset_id, url)`` of a file value, or None when ``value`` is not one."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    if isinstance(value.get("asset_id"), str) and value["asset_id"]:
        return value["asset_id"], None
    if isinstance(value.get("url"), str) and value["url"]:
        return None, value["url"]
    return None


def _looks_like_file(value: Any) -> bool:
    return isinstance(value, dict) and bool({"asset_id", "url"} & set(value))


def check_model_items(
    items: Sequence[Mapping[str, Any]],
    chain: Sequence[InputRules | None],
    policy: UrlPolicy,
    *,
    reject_unknown: bool = True,
) -> ItemsChecked:
    """Faults of every item against every model of ``chain``, and the files they name."""
    checked = ItemsChecked()
    rules = [r for r in chain if r is not None]
    # A name is unknown only when every model of the chain declares what it reads.
    strict = reject_unknown and bool(rules) and len(rules) == len(chain)
    known_names = {n for r in rules for n in (*r.fields, *r.also_known)}
    known = sorted(known_names)
    for index, item in enumerate(items):
        where = f"items[{index}].inputs"
        for name, value in item.items():
            loc = f"{where}.{name}"
            _collect_files(loc, index, value, checked, policy)
            if strict and name not in known_names:
                checked.add(InputFault(loc, _unknown(name, known, rules)))
        for model in rules:
            _check_item(where, item, model, checked, several=len(chain) > 1)
    return checked


def _check_item(
    where: str, item: Mapping[str, Any], model: InputRules, checked: ItemsChecked, *, several: bool
) -> None:
    by = f" (by {model.model_id})" if several else ""
    for name, rule in model.fields.items():
        value = item.get(name)
        loc = f"{where}.{name}"
        if value is None:
            if rule.required:
                checked.add(InputFault(loc, f"required{by}"))
            continue
        problem = rule.check(value)
        if problem is not None:
            checked.add(InputFault(loc, f"{problem}{by}"))


def _collect_files(
    loc: str, index: int, value: Any, checked: ItemsChecked, policy: UrlPolicy
) -> None:
    """Note the files of one input (a file, or a list holding files) and check their form."""
    values = enumerate(value) if isinstance(value, list) else [(None, value)]
    for position, one in values:
        here = loc if position is None else f"{loc}[{position}]"
        if not _looks_like_file(one):
            continue
        fields = _file_fields(one)
        if fields is None:
            checked.add(InputFault(here, f"not a file: {_FILE_SHAPE}"))
            continue
        asset_id, url = fields
        if url is not None:
            try:
                policy.check_url(url)
            except UrlRefused as exc:
                checked.add(InputFault(here, exc.message))
                continue
        checked.files.append(FileRef(here, index, asset_id=asset_id, url=url))


def _unknown(name: str, known: list[str], rules: list[InputRules]) -> str:
    models = ", ".join(r.model_id for r in rules)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) or "nothing"
    return f"not an input of {models} (it takes: {listed}){hint}"


class UrlVetter(Protocol):
    """Checks a URL as a fetch would (policy and the host's addresses), without fetching."""

    async def vet(self, url: str) -> object: ...


async def vet_urls(
    files: Iterable[FileRef], vetter: UrlVetter, *, concurrency: int = 16
) -> list[InputFault]:
    """Faults of the URLs whose host resolves to an address the policy refuses.

    Each host is looked up once (a batch of 10,000 images usually has a handful of hosts),
    ``concurrency`` at a time."""
    by_host: dict[tuple[str, str, int | None], list[FileRef]] = {}
    for ref in files:
        if ref.url is not None:
            url = URL(ref.url)
            by_host.setdefault((url.scheme, url.host or "", url.explicit_port), []).append(ref)
    gate = asyncio.Semaphore(concurrency)

    async def problem(refs: list[FileRef]) -> str | None:
        async with gate:
            try:
                await vetter.vet(refs[0].url or "")
            except UrlRefused as exc:
                return exc.message
            except FetchError:
                # A host not found from here may be found from the provider (split DNS, an
                # offline gateway): the policy refuses addresses, not names it cannot see.
                return None
        return None

    hosts = list(by_host.values())
    found = await asyncio.gather(*(problem(refs) for refs in hosts))
    faults = [
        InputFault(ref.loc, why)
        for refs, why in zip(hosts, found, strict=True)
        if why is not None
        for ref in refs
    ]
    faults.sort(key=lambda f: _order(f.loc))
    return faults


def _order(loc: str) -> tuple[int, str]:
    # items[12].inputs.x -> (12, loc): faults in the order of the items.
    index = loc[len("items[") : loc.index("]")] if loc.startswith("items[") else ""
    return (int(index) if index.isdigit() else -1, loc)


def invalid_inputs(
    faults: Sequence[InputFault], *, code: str = "INVALID_INPUTS"
) -> ValidationFailed:
    """The one 422 for a job's bad inputs, listing each with its location."""
    first = faults[0]
    more = f" (and {len(faults) - 1} more)" if len(faults) > 1 else ""
    return ValidationFailed(
        f"{first.loc}: {first.msg}{more}",
        code=code,
        details={"errors": [f.as_dict() for f in faults[:MAX_FAULTS]], "count": len(faults)},
    )


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
