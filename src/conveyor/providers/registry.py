"""Every model this node can call, by id: declarative HTTP models and local engines."""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.providers.base import ModelAdapter


class ModelRegistry:
    def __init__(self, adapters: Iterable[ModelAdapter] = ()) -> None:
        self._adapters: dict[str, ModelAdapter] = {}
        for adapter in adapters:
            self.add(adapter)

    def add(self, adapter: ModelAdapter) -> None:
        """Register (or replace, e.g. after an operator edits a provider) a model."""
        self._adapters[adapter.model_id] = adapter

    def remove(self, model_id: str) -> None:
        self._adapters.pop(model_id, None)

    def get(self, model_id: str) -> ModelAdapter | None:
        return self._adapters.get(model_id)

    def all(self) -> list[ModelAdapter]:
        return [self._adapters[k] for k in sorted(self._adapters)]

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._adapters
