"""Recipes: the steps one item goes through, written as plain async code.

A recipe's ``run`` is called once per item, and again if the item is resumed after a crash
or retried. Each ``await run.step(name, models, inputs)`` is durable: a step that finished
before returns its stored output without calling anything; a step whose provider task was
submitted resumes polling it; otherwise the models are tried in order (a fallback chain).
So a recipe may be re-run from the top at any time and pays for each step once. A step
given a ``reuse_key`` can also take the output of the same work done earlier for the same
client, in another item or job (``skip_existing`` of the word-media recipe).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from conveyor.errors import ItemFailed as ItemFailed  # recipes raise it; in the one tree
from conveyor.errors import ValidationFailed
from conveyor.providers.base import AssetIO, FileInput, ModelOutput, StoredFile


class ItemRun(Protocol):
    """What a recipe sees while it runs one item."""

    @property
    def item_id(self) -> str: ...

    @property
    def job_id(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    @property
    def key(self) -> str | None: ...

    @property
    def input(self) -> dict[str, Any]: ...

    @property
    def options(self) -> dict[str, Any]: ...

    @property
    def languages(self) -> list[str]: ...

    @property
    def files(self) -> AssetIO: ...

    async def step(
        self,
        name: str,
        models: Sequence[str],
        inputs: dict[str, Any],
        *,
        reuse_key: str | None = None,
        reuse: bool = True,
    ) -> ModelOutput:
        """Run ``inputs`` through the first model of ``models`` that succeeds (durable).

        ``reuse_key`` names the work (same key, same result) and is recorded with a
        succeeded step; with ``reuse``, a step of the same client that succeeded under that
        key is returned instead of calling a model (``ModelOutput.reused``)."""
        ...

    async def set_stage(self, stage: str) -> None:
        """Tell the job where this item is (e.g. ``translating``)."""
        ...

    async def fetch_input(self, url: str, *, images_only: bool = False) -> StoredFile:
        """Download a client-given URL (SSRF-checked, size-limited) and store it.

        ``images_only`` refuses anything else with ``NotAnImage`` before it is stored."""
        ...

    def warn(self, message: str) -> None:
        """Attach a warning to the item's result."""
        ...

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None:
        """Wait on the engine's clock (injectable in tests), e.g. for a time budget."""
        ...


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class NoOptions(StrictModel):
    pass


class Recipe(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    # Stages an item passes through, in order; a job reports the earliest one still open.
    stages: ClassVar[tuple[str, ...]] = ("processing",)
    item_model: ClassVar[type[BaseModel]]
    options_model: ClassVar[type[BaseModel]] = NoOptions

    def parse_items(self, items: list[Any]) -> list[BaseModel]:
        """Validate every item; one error lists each bad item by index."""
        parsed: list[BaseModel] = []
        problems: list[dict[str, Any]] = []
        for index, raw in enumerate(items):
            try:
                parsed.append(self.item_model.model_validate(raw))
            except ValueError as exc:
                problems.append({"item": index, "error": _short_error(exc)})
        if problems:
            raise ValidationFailed(
                f"{len(problems)} item(s) are invalid for recipe {self.name!r}",
                details={"items": problems[:50]},
            )
        return parsed

    def parse_options(self, options: dict[str, Any]) -> BaseModel:
        try:
            return self.options_model.model_validate(options)
        except ValueError as exc:
            raise ValidationFailed(
                f"invalid options for recipe {self.name!r}: {_short_error(exc)}"
            ) from exc

    def item_key(self, item: BaseModel) -> str | None:
        """The client's own name for the item (lot id, word, file name), if it has one."""
        return None

    def file_inputs(self, item: BaseModel) -> list[str]:
        """Asset ids the item refers to; the caller checks they belong to the client."""
        return []

    def models(self, options: BaseModel) -> list[str]:
        """Every model the recipe may call with these options (for checks and the catalogue)."""
        return []

    def time_limit(self, options: dict[str, Any]) -> float | None:
        """Seconds of work one item may take with the job's (stored) options; the engine
        fails an item past it with ``TIMEOUT``. Waits for a turn are not counted
        (``conveyor.core.time_budget``). None: no limit but the queue's own."""
        return None

    @abstractmethod
    async def run(self, run: ItemRun) -> dict[str, Any]:
        """Do the work for one item; return its result as JSON."""


class RecipeRegistry:
    def __init__(self, recipes: Sequence[Recipe]) -> None:
        self._recipes = {r.name: r for r in recipes}

    def get(self, name: str) -> Recipe | None:
        return self._recipes.get(name)

    def all(self) -> list[Recipe]:
        return list(self._recipes.values())


def asset_file(value: Any) -> FileInput | None:
    """Item inputs name files as ``{"asset_id": ...}`` or ``{"url": ...}``."""
    if (
        isinstance(value, dict)
        and set(value) == {"asset_id"}
        and isinstance(value["asset_id"], str)
    ):
        return FileInput(asset_id=value["asset_id"])
    if isinstance(value, dict) and set(value) == {"url"} and isinstance(value["url"], str):
        return FileInput(url=value["url"])
    return None


def output_json(output: ModelOutput) -> dict[str, Any]:
    """A model output as an item result fragment."""
    result: dict[str, Any] = {"model": output.model_id}
    if output.text is not None:
        result["text"] = output.text
    if output.data is not None:
        result["data"] = output.data
    if output.files:
        result["files"] = [
            {"asset_id": f.asset_id, "mime_type": f.mime_type, "size": f.size} for f in output.files
        ]
    return result


def _short_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return "; ".join(parts)
    return str(exc)
