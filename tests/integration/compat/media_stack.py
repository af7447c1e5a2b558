"""Seed 002's front end, as a test client of a live Conveyor with the simulator behind it.

``FrontEnd`` does what the seed's analysis asks of the flashcard app's UI: start a batch,
poll its task every 2 s showing a badge ("Генерация: 45/100") without blocking anything,
cancel a batch, retry failed words, and load each file URL as an ``<img>``/``<audio>``
element would (no ``Authorization`` header). Its pauses go through an injected function,
so tests decide how long "2 s" takes and never assert on wall time.

The stack itself is seed 000's (``descriptions_stack.open_stack``): Conveyor with workers
embedded, on real sockets, providers simulated over real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from conveyor.core.clock import ManualClock

FINISHED = ("completed", "failed", "cancelled")
POLL_SECONDS = 2.0
Pause = Callable[[float], Awaitable[None]]


def clock_pace(clock: ManualClock) -> Pause:
    """A front-end pause on the engine's clock, yielding a moment of real time so the
    server gets on with the work between two polls."""

    async def pause(seconds: float) -> None:
        await clock.sleep(seconds)
        await asyncio.sleep(0.02)

    return pause


@dataclass
class FrontEnd:
    base_url: str
    token: str | None = None
    scheme: str = "Token"
    pause: Pause = asyncio.sleep
    badges: list[str] = field(default_factory=list)
    progress: list[int] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)

    def _client(self, *, authorised: bool = True) -> httpx.AsyncClient:
        headers = {}
        if authorised and self.token is not None:
            headers["Authorization"] = f"{self.scheme} {self.token}"
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=60)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self._client() as http:
            return await http.request(method, path, **kwargs)

    async def start_batch(self, words: list[dict[str, Any]], **extra: Any) -> str:
        answer = await self.call(
            "POST", "/api/media/generate-batch/", json={"words": words, **extra}
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body == {"task_id": body["task_id"], "status": "pending", "progress": 0}
        return str(body["task_id"])

    async def task(self, task_id: str) -> dict[str, Any]:
        answer = await self.call("GET", f"/api/media/tasks/{task_id}/")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def follow(self, task_id: str, *, polls: int = 2_000) -> dict[str, Any]:
        """Poll every 2 s until the task ends, showing progress as the seed's badge."""
        for _ in range(polls):
            task = await self.task(task_id)
            done = task["completed_words"] + task["failed_words"] + task["cancelled_words"]
            self.badges.append(f"Генерация: {done}/{task['total_words']}")
            self.progress.append(task["progress"])
            if task["status"] in FINISHED:
                return task
            self.pauses.append(POLL_SECONDS)
            await self.pause(POLL_SECONDS)
        raise AssertionError(f"task {task_id} still running after {polls} polls")

    async def cancel(self, task_id: str) -> dict[str, Any]:
        answer = await self.call("DELETE", f"/api/media/tasks/{task_id}/")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def retry(self, task_id: str) -> dict[str, Any]:
        answer = await self.call("POST", f"/api/media/tasks/{task_id}/retry/")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def load(self, url: str) -> httpx.Response:
        """What ``<img src=url>`` gets: the URL as given, no header."""
        async with self._client(authorised=False) as http:
            return await http.get(url)


def words(
    count: int, *, prefix: str = "word", audio_every: int = 1, language: str = "en"
) -> list[dict[str, Any]]:
    """``count`` distinct words; every ``audio_every``-th also asks for audio."""
    return [
        {
            "word": f"{prefix}{n:03d}",
            "language": language,
            "generate_image": True,
            "generate_audio": n % audio_every == 0,
            # What the app's own word objects carry along; the API ignores it.
            "card_id": n,
        }
        for n in range(count)
    ]
