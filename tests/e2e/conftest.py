"""Browser tests: one Chromium for the whole session, one console server per scenario.

They skip only when ``/usr/bin/chromium`` is missing, with the reason; on CI
(``CONVEYOR_TEST_BROWSER=required``) a missing browser fails them instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.harness import (
    BROWSER_REQUIRED,
    Console,
    browser_missing_reason,
    chromium,
    console_server,
)

TIMEOUT_MS = 20_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    reason = browser_missing_reason()
    if reason is not None:
        if BROWSER_REQUIRED:
            pytest.fail(f"a browser is required (CONVEYOR_TEST_BROWSER=required): {reason}")
        pytest.skip(reason)
    with chromium() as launched:
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def open_console(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """Open mode: no API key exists, every request is the local client's."""
    with console_server(tmp_path_factory.mktemp("open-console")) as console:
        yield console


@pytest.fixture(scope="session")
def keyed_console(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """API keys exist (for the operator's ``local`` client, alice and bob)."""
    with console_server(
        tmp_path_factory.mktemp("keyed-console"), key_clients=["local", "alice", "bob"]
    ) as console:
        yield console


def _context(browser: Browser, base_url: str) -> BrowserContext:
    context = browser.new_context(base_url=base_url, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def page(browser: Browser, open_console: Console) -> Iterator[Page]:
    context = _context(browser, open_console.base_url)
    yield context.new_page()
    context.close()


@pytest.fixture
def keyed_context(browser: Browser, keyed_console: Console) -> Iterator[BrowserContext]:
    context = _context(browser, keyed_console.base_url)
    yield context
    context.close()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last. Playwright's sync API keeps an event loop running in the test
    thread for as long as the session's browser lives, and no asyncio test can start its own
    loop in that thread meanwhile."""
    browser_tests = [i for i in items if "tests/e2e/" in str(i.path)]
    others = [i for i in items if "tests/e2e/" not in str(i.path)]
    items[:] = others + browser_tests
