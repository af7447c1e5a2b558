"""Fixtures shared by the whole suite: a real database per test, on SQLite and PostgreSQL.

``database_url`` is parametrised, so a test that asks for it runs on both backends. Tests
that need a Debian program or an optional extra are skipped (or failed, on CI) here, see
``tests/support/programs.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from conveyor.core.db import Database
from tests.support import databases
from tests.support.programs import missing_requirements


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = missing_requirements(item)
    if missing is None:
        return
    reason, required = missing
    if required:
        pytest.fail(f"required on this run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    reason = databases.postgres_unavailable_reason()
    if reason is not None:
        if databases.POSTGRES_REQUIRED:
            pytest.fail(f"PostgreSQL is required (CONVEYOR_TEST_POSTGRES=required): {reason}")
        pytest.skip(f"PostgreSQL not reachable at {databases.POSTGRES_URL}: {reason}")
    url = databases.create_postgres_database()
    yield url
    databases.drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    # Sync on purpose: the PostgreSQL set-up runs its own event loop.
    if request.param == "sqlite":
        return databases.fresh_sqlite_url(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(databases.truncate_all(url))
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=5)
    try:
        yield database
    finally:
        await database.dispose()
