"""Fixtures of the seed-000 tests: a whole stack per test, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.compat.descriptions_stack import (
    TRANSLATE_MODEL,
    VISION_MODEL,
    Stack,
    StartStack,
    open_stack,
)


@pytest.fixture
def start_stack(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StartStack:
    """``async with start_stack(clock=..., sim={...}, **settings) as stack``."""
    monkeypatch.setenv("CONVEYOR_OPENAI_TRANSLATE_MODEL", TRANSLATE_MODEL)
    monkeypatch.setenv("CONVEYOR_OPENAI_VISION_MODEL", VISION_MODEL)

    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[Stack]:
        async with open_stack(database_url, tmp_path / "data", **options) as stack:
            yield stack

    return start
