"""The ``conveyor`` command line: run the service, manage keys, submit and follow jobs."""

from __future__ import annotations

from conveyor.cli import catalog, jobs, keys, provider_setup, queue, server, trying
from conveyor.cli.app import app

__all__ = [
    "app",
    "catalog",
    "jobs",
    "keys",
    "main",
    "provider_setup",
    "queue",
    "server",
    "trying",
]


def main() -> None:
    app()
