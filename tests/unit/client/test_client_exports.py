"""``conveyor.client``'s public surface is what its ``__all__`` lists, and every name exists."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import pytest

import conveyor.client

SUBMODULES = ["conveyor.client.native", "conveyor.client.descriptions"]


def public_names(module: ModuleType) -> set[str]:
    """Names a user could import that the module means to offer (its own, not its imports)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", module.__name__).startswith("conveyor.client")
    }


def test_the_package_exports_exactly_its_public_names() -> None:
    names = {
        name
        for name, value in vars(conveyor.client).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert names == set(conveyor.client.__all__)


@pytest.mark.parametrize("name", ["conveyor.client", *SUBMODULES])
def test_all_lists_existing_names_once_and_sorted(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert [item for item in exported if not hasattr(module, item)] == []
    assert len(exported) == len(set(exported))
    assert exported == sorted(exported, key=lambda item: (not item.isupper(), item))


@pytest.mark.parametrize("name", SUBMODULES)
def test_every_public_class_and_function_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    assert public_names(module) - set(module.__all__) == set()


def test_the_package_offers_every_client_and_error() -> None:
    for name in SUBMODULES:
        module = importlib.import_module(name)
        classes = {item for item in module.__all__ if inspect.isclass(getattr(module, item))}
        assert classes - set(conveyor.client.__all__) == set(), name


def test_every_public_method_of_the_sdk_says_what_it_does() -> None:
    """Each exported class's own methods, its constructor and what it inherits from the
    SDK (``close``, ``aclose``) carry a docstring of their own, not a parent's."""
    undocumented = []
    for name in conveyor.client.__all__:
        exported = getattr(conveyor.client, name)
        if not inspect.isclass(exported):
            continue
        assert exported.__doc__, name
        for klass in exported.__mro__:
            if not klass.__module__.startswith("conveyor.client"):
                continue
            for attribute, member in vars(klass).items():
                public = not attribute.startswith("_") or attribute == "__init__"
                if public and inspect.isfunction(member) and not member.__doc__:
                    undocumented.append(f"{name}.{attribute}")
    assert undocumented == []
