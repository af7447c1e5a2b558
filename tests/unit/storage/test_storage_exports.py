"""``conveyor.storage.__all__`` lists exactly the package's public names."""

from __future__ import annotations

import inspect

import conveyor.storage as storage


def test_all_names_exist() -> None:
    missing = [name for name in storage.__all__ if not hasattr(storage, name)]

    assert missing == []


def test_every_public_class_and_function_is_listed() -> None:
    defined_here = {
        name
        for name, value in vars(storage).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__.startswith("conveyor.storage")
    }

    assert defined_here - set(storage.__all__) == set()
    assert sorted(storage.__all__) == storage.__all__
