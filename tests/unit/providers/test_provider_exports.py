"""Each provider module's public surface is what its ``__all__`` says, and it exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "conveyor.providers.spec",
    "conveyor.providers.template",
    "conveyor.providers.extract",
    "conveyor.providers.limits",
    "conveyor.providers.http",
    "conveyor.providers.http.adapter",
    "conveyor.providers.http.loader",
    "conveyor.providers.http.outputs",
    "conveyor.providers.http.transport",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_sorted(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported, f"{name} exports nothing"
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == []
    assert exported == sorted(exported, key=lambda item: (not item.isupper(), item))
