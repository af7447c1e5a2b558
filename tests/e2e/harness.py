"""A console server and a browser for end-to-end tests and screenshots.

The server is the real app (``create_app``) on SQLite in a temporary folder, served by
uvicorn from a thread on a free port, with two scripted models added: ``test/gated-image``
(waits until the test opens its gate, then inverts the picture it was given) and
``test/echo`` (the suite's ``ScriptedModel``; texts in ``broken`` fail for good). The
browser is Debian's Chromium driven by Playwright; Playwright never downloads one.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, ImageOps
from playwright.sync_api import Browser, Playwright, sync_playwright

from conveyor.app import create_app
from conveyor.clients.service import ClientService
from conveyor.config import Settings
from conveyor.core.clock import SystemClock
from conveyor.core.db import Database
from conveyor.providers.base import (
    Availability,
    Checkpoint,
    FileInput,
    ModelCall,
    ModelOutput,
    ProviderState,
)
from conveyor.providers.errors import ProviderCancelled
from tests.support import databases
from tests.support.adapters import ScriptedModel
from tests.support.server import ServerThread

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps calling Google's hosts, which this machine
# refuses; a fresh profile per launch comes from Playwright (a new --user-data-dir).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
T = TypeVar("T")
BROWSER_REQUIRED = os.environ.get("CONVEYOR_TEST_BROWSER") == "required"
SECRET = "e2e-secret-" + "x" * 32


def _entry(model_id: str, kind: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": model_id,
        "kind": kind,
        "provider": "test",
        "title": model_id,
        "description": "a scripted model for browser tests",
        "pros": [],
        "cons": [],
        "tags": ["test"],
        "spec": {"inputs": inputs},
        "available": True,
        "unavailable_reason": None,
        "enable_with": None,
    }


@dataclass
class GatedImageModel:
    """Holds every call until ``gate`` opens (or the job is cancelled), then inverts the
    colours of the image it was given."""

    model_id: str = "test/gated-image"
    kind: str = "image"
    gate: threading.Event = field(default_factory=threading.Event)

    def availability(self) -> Availability:
        return Availability(True)

    def catalogue_entry(self) -> dict[str, Any]:
        return _entry(
            self.model_id,
            self.kind,
            [{"name": "image", "type": "file", "required": True, "description": "a picture"}],
        )

    async def run(
        self, call: ModelCall, *, resume: ProviderState | None, checkpoint: Checkpoint
    ) -> ModelOutput:
        while not self.gate.is_set():
            if call.is_cancelled():
                raise ProviderCancelled("job cancelled")
            await asyncio.sleep(0.02)
        image = call.inputs["image"]
        assert isinstance(image, FileInput)
        picture = Image.open(io.BytesIO(await call.files.read(image))).convert("RGB")
        out = io.BytesIO()
        ImageOps.invert(picture).save(out, "PNG")
        stored = await call.files.store(out.getvalue(), mime_type="image/png")
        return ModelOutput(files=[stored], cost=0.25)


@dataclass
class EchoModel(ScriptedModel):
    """The suite's scripted text model, with a declared ``text`` input for the form."""

    def catalogue_entry(self) -> dict[str, Any]:
        entry = super().catalogue_entry()
        entry["spec"] = {"inputs": [{"name": "text", "type": "string", "required": True}]}
        return entry


@dataclass
class Console:
    base_url: str
    gated: GatedImageModel
    echo: EchoModel
    database_url: str
    keys: dict[str, str]

    def revoke_key(self, client: str) -> None:
        """Revoke ``client``'s key behind the console's back, as the CLI would."""

        async def revoke() -> None:
            db = Database(self.database_url, pool_size=1)
            try:
                service = ClientService(db, SystemClock())
                for key in await service.list_keys():
                    if key.client == client and key.revoked_at is None:
                        await service.revoke_key(key.id)
            finally:
                await db.dispose()

        run_async(revoke())


def off_the_browser_thread(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread of its own: Playwright's sync API keeps an event loop
    running in the test's thread, where ``asyncio.run`` refuses to start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return off_the_browser_thread(lambda: asyncio.run(coro))


def png(color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


async def _create_keys(url: str, names: list[str]) -> dict[str, str]:
    db = Database(url, pool_size=1)
    try:
        clients = ClientService(db, SystemClock())
        # The operator's own ``local`` client gets the admin key; everyone else a client key.
        return {
            name: (await clients.create_key(name, scope="admin" if name == "local" else "client"))[
                0
            ]
            for name in names
        }
    finally:
        await db.dispose()


@contextmanager
def console_server(folder: Path, *, key_clients: list[str] | None = None) -> Iterator[Console]:
    """The app with the scripted models; ``key_clients`` get an API key each before it
    starts (then the console asks people to sign in)."""
    folder.mkdir(parents=True, exist_ok=True)
    template = off_the_browser_thread(lambda: databases.sqlite_template(folder))
    url = databases.fresh_sqlite_url(template, folder)
    keys = run_async(_create_keys(url, key_clients)) if key_clients else {}
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=folder / "data",
        database_url=url,
        secret_key=SECRET,
        process_pool_size=1,
        retry_base_delay=0.05,
    )
    gated, echo = GatedImageModel(), EchoModel(model_id="test/echo")
    app = create_app(settings, extra_adapters=[gated, echo])
    with ServerThread(app) as server:
        yield Console(server.base_url, gated, echo, url, keys)
        gated.gate.set()  # nothing waits on a closed gate while the server stops


def browser_missing_reason() -> str | None:
    if CHROMIUM.exists():
        return None
    return f"{CHROMIUM} is missing (install Debian's chromium: make system-deps)"


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield launch(playwright)


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
    )
