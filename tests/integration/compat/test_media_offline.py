"""Seed 002's media offline: no provider key, no simulator. Every word still gets its audio
from ``local/tts`` (espeak-ng here), and its picture fails with the setting that enables one.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from conveyor.jobs.models import step_runs
from tests.integration.compat.media_stack import FrontEnd
from tests.integration.conftest import Serve

PROVIDER_SETTINGS = (
    "CONVEYOR_GENAPI_API_KEY",
    "GEN_API_KEY",
    "CONVEYOR_OPENAI_API_KEY",
    "OPENAI_API_KEY",
    "CONVEYOR_OPENAI_BASE_URL",
    "CONVEYOR_REPLICATE_API_TOKEN",
    "REPLICATE_API_TOKEN",
    "CONVEYOR_KIE_API_KEY",
    "KIE_API_KEY",
)
WORDS = {"cat": "en", "кошка": "ru", "Katze": "de", "gato": "es", "chat": "fr"}


@pytest.fixture(autouse=True)
def no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_SETTINGS:
        monkeypatch.delenv(name, raising=False)


async def quick(seconds: float) -> None:
    await asyncio.sleep(0.05)


async def test_offline_every_word_is_spoken_and_pictures_say_what_enables_them(
    serve: Serve,
) -> None:
    async with serve() as http:
        front = FrontEnd(str(http.base_url), pause=quick)
        task_id = await front.start_batch(
            [{"word": word, "language": language} for word, language in WORDS.items()]
        )
        task = await front.follow(task_id)

        assert task["status"] == "completed"
        assert task["completed_words"] == task["partial_words"] == len(WORDS)
        assert task["failed_words"] == 0
        for result in task["results"]:
            assert result["status"] == "partial"
            assert result["language"] == WORDS[result["word"]]
            audio = result["media"]["audio"]
            assert audio["model"] == "local/tts"
            assert audio["mime_type"] == "audio/wav"
            assert any("openai/speech" in reason for reason in audio["fallback_from"])
            spoken = await front.load(result["audio_url"])
            assert spoken.status_code == 200
            assert spoken.headers["content-type"] == "audio/wav"
            assert spoken.content.startswith(b"RIFF")
            assert len(spoken.content) > 1000
            assert "CONVEYOR_GENAPI_API_KEY" in result["media"]["image"]["error"]
            assert "image_url" not in result

        # Retrying changes nothing that was made: the audio is the same file.
        retried = await front.retry(task_id)
        assert retried["retried_words"] == len(WORDS)
        again = await front.follow(task_id)
        assert [r["media"]["audio"]["asset_id"] for r in again["results"]] == [
            r["media"]["audio"]["asset_id"] for r in task["results"]
        ]
        assert again["partial_words"] == len(WORDS)


async def test_offline_single_words_and_languages_no_voice_can_speak(serve: Serve) -> None:
    async with serve() as http:
        front = FrontEnd(str(http.base_url), pause=quick)
        spoken = await front.call("POST", "/api/media/generate-audio/", json={"word": "hello"})
        assert spoken.status_code == 200, spoken.text
        assert spoken.json()["model"] == "local/tts"

        # No picture model can run: refused at once, with what would enable one.
        drawn = await front.call("POST", "/api/media/generate-image/", json={"word": "hello"})
        assert drawn.status_code == 422
        refusal = drawn.json()
        assert refusal["error"] == "MODEL_UNAVAILABLE"
        assert "CONVEYOR_GENAPI_API_KEY" in refusal["message"]
        assert "CONVEYOR_OPENAI_API_KEY" in refusal["message"]
        listed = (await front.call("GET", "/api/media/tasks/")).json()["results"]
        assert len(listed) == 1  # the audio's task; the refused picture made none

        # Yoruba is a language, but no voice here speaks it: refused before anything starts.
        refused = await front.call(
            "POST",
            "/api/media/generate-batch/",
            json={"words": [{"word": "cat"}, {"word": "ológbò", "language": "yo"}]},
        )
        assert refused.status_code == 400
        [reason] = refused.json()["details"]["words"]["1"]["language"]
        assert "unknown language 'yo' for speech" in reason
        alone = await front.call(
            "POST", "/api/media/generate-audio/", json={"word": "ológbò", "language": "yo"}
        )
        assert alone.status_code == 400
        assert set(alone.json()["details"]) == {"language"}
        # A picture needs no voice.
        pictured = await front.call(
            "POST",
            "/api/media/generate-batch/",
            json={"words": [{"word": "ológbò", "language": "yo", "generate_audio": False}]},
        )
        assert pictured.status_code == 201


async def test_progress_survives_a_restart_and_no_word_is_spoken_twice(serve: Serve) -> None:
    spoken_only = [{"word": f"word {n}", "generate_image": False} for n in range(24)]
    settings = {"media_audio_models": ["local/tts"], "worker_concurrency": 1}
    async with serve(**settings) as http:
        front = FrontEnd(str(http.base_url), pause=quick)
        task_id = await front.start_batch(spoken_only)
        for _ in range(5_000):
            task = await front.task(task_id)
            if task["progress"] >= 10:
                break
            await asyncio.sleep(0.01)
        before = task["progress"]
    assert 10 <= before < 100  # the server stopped in the middle of the batch

    async with serve(**settings) as http:
        front = FrontEnd(str(http.base_url), pause=quick)
        task = await front.follow(task_id)
        assert task["status"] == "completed"
        assert task["completed_words"] == 24
        assert min(front.progress) >= before
        assert front.progress == sorted(front.progress)
        async with http.app.state.runtime.db.read() as conn:  # type: ignore[attr-defined]
            made = await conn.scalar(
                select(func.count()).select_from(step_runs).where(step_runs.c.status == "succeeded")
            )
        assert made == 24
