"""The ``word-media`` recipe on a scripted ``ItemRun``: no database, no network."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.config import DEFAULT_MEDIA_IMAGE_PROMPT
from conveyor.core.clock import ManualClock
from conveyor.errors import ItemFailed, TemporaryFailure
from conveyor.providers.base import ModelOutput, StoredFile
from conveyor.recipes.word_media import (
    RETRY_DELAY,
    TRANSIENT_ROUNDS,
    WordItem,
    WordMediaOptions,
    WordMediaRecipe,
    partial_media,
)

IMAGE_CHAIN = ["genapi/z-image", "openai/image"]
AUDIO_CHAIN = ["openai/speech", "local/tts"]
Answer = Callable[[str, list[str], dict[str, Any]], Any]


def made_by_first(name: str, models: list[str], inputs: dict[str, Any]) -> ModelOutput:
    kind = "image/png" if name.startswith("image") else "audio/wav"
    return ModelOutput(files=[StoredFile(f"asset-{name}", kind, 100, "0" * 64)], model_id=models[0])


class Stopped(Exception):
    """Stands for the engine's cancellation, which is no ``ConveyorError``."""


class FakeRun:
    """``ItemRun`` with scripted model answers; records every step asked for."""

    def __init__(
        self,
        item: dict[str, Any],
        *,
        options: dict[str, Any] | None = None,
        answer: Answer = made_by_first,
    ) -> None:
        self.item_id = "item-1"
        self.job_id = "job-1"
        self.client_id = "client-1"
        self.input = WordItem.model_validate(item).model_dump(mode="json")
        self.key = self.input["word"]
        self.options = WordMediaOptions.model_validate(options or {}).model_dump()
        self.languages: list[str] = []
        self.answer = answer
        self.clock = ManualClock(sleep_advances=True)
        self.steps: list[dict[str, Any]] = []

    async def step(
        self,
        name: str,
        models: Sequence[str],
        inputs: dict[str, Any],
        *,
        reuse_key: str | None = None,
        reuse: bool = True,
    ) -> ModelOutput:
        self.steps.append(
            {
                "name": name,
                "models": list(models),
                "inputs": inputs,
                "key": reuse_key,
                "reuse": reuse,
            }
        )
        result = self.answer(name, list(models), inputs)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, BaseException):
            raise result
        assert isinstance(result, ModelOutput)
        return result

    def warn(self, message: str) -> None:
        raise AssertionError("the recipe reports per medium, not by warnings")

    def now(self) -> datetime:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)


def recipe(*, neural: bool = False, prompt: str = DEFAULT_MEDIA_IMAGE_PROMPT) -> WordMediaRecipe:
    return WordMediaRecipe(IMAGE_CHAIN, AUDIO_CHAIN, prompt, neural_english=lambda: neural)


def steps_named(run: FakeRun, name: str) -> list[dict[str, Any]]:
    return [s for s in run.steps if s["name"] == name]


async def test_a_word_gets_a_picture_and_a_pronunciation_at_the_same_time() -> None:
    started: set[str] = set()
    both = asyncio.Event()

    async def wait_for_the_other(name: str, models: list[str], inputs: dict[str, Any]) -> Any:
        started.add(name)
        if {"image", "audio"} <= started:
            both.set()
        # One medium waiting for the other would deadlock if they ran one after the other.
        await asyncio.wait_for(both.wait(), 5)
        return made_by_first(name, models, inputs)

    run = FakeRun({"word": "  big   cat ", "language": "en-gb"}, answer=wait_for_the_other)
    result = await recipe().run(run)

    assert result == {
        "word": "big cat",
        "language": "en-GB",
        "image": {
            "status": "completed",
            "step": "image",
            "asset_id": "asset-image",
            "mime_type": "image/png",
            "size": 100,
            "model": "genapi/z-image",
            "reused": False,
        },
        "audio": {
            "status": "completed",
            "step": "audio",
            "asset_id": "asset-audio",
            "mime_type": "audio/wav",
            "size": 100,
            "model": "openai/speech",
            "reused": False,
        },
    }
    assert partial_media(result) == []


async def test_the_picture_prompt_asks_for_no_text_and_a_word_may_bring_its_own() -> None:
    run = FakeRun({"word": "кошка", "language": "ru", "generate_audio": False})
    await recipe().run(run)
    [image] = run.steps
    prompt = image["inputs"]["prompt"]
    assert image["models"] == IMAGE_CHAIN
    assert 'Russian word "кошка"' in prompt
    assert "No text, no letters" in prompt
    custom = FakeRun({"word": "cat", "image_prompt": "a ginger cat, watercolour"})
    await recipe().run(custom)
    assert steps_named(custom, "image")[0]["inputs"] == {"prompt": "a ginger cat, watercolour"}


async def test_one_failed_medium_leaves_the_other_and_the_word_is_partial() -> None:
    def no_pictures(name: str, models: list[str], inputs: dict[str, Any]) -> Any:
        if name == "image":
            return ItemFailed("step 'image' failed: genapi/z-image: no API key")
        return made_by_first(name, models, inputs)

    result = await recipe().run(FakeRun({"word": "cat"}, answer=no_pictures))
    assert result["image"] == {
        "status": "failed",
        "error": "step 'image' failed: genapi/z-image: no API key",
    }
    assert result["audio"]["status"] == "completed"
    assert partial_media(result) == ["image"]


async def test_a_word_fails_only_when_every_medium_it_asked_for_failed() -> None:
    def nothing(name: str, models: list[str], inputs: dict[str, Any]) -> Any:
        return ItemFailed(f"{name} refused")

    with pytest.raises(ItemFailed) as caught:
        await recipe().run(FakeRun({"word": "cat"}, answer=nothing))
    assert caught.value.code == "NO_MEDIA"
    assert caught.value.message == (
        "no medium could be made for 'cat': image: image refused; "
        "audio: audio refused; audio-2 refused"
    )


async def test_speech_models_get_their_own_inputs_and_local_speech_comes_last() -> None:
    def remote_down(name: str, models: list[str], inputs: dict[str, Any]) -> Any:
        if name == "audio":
            return ItemFailed("step 'audio' failed: openai/speech: no API key")
        return made_by_first(name, models, inputs)

    run = FakeRun({"word": "cat", "voice": "nova", "generate_image": False}, answer=remote_down)
    result = await recipe(neural=True).run(run)
    assert [(s["name"], s["models"], s["inputs"]) for s in run.steps] == [
        ("audio", ["openai/speech"], {"text": "cat", "voice": "nova"}),
        (
            "audio-2",
            ["local/tts"],
            {"text": "cat", "language": "en", "voice": "neural", "format": "wav"},
        ),
    ]
    assert result["audio"]["model"] == "local/tts"
    assert result["audio"]["step"] == "audio-2"
    assert result["audio"]["fallback_from"] == ["step 'audio' failed: openai/speech: no API key"]
    attempts = recipe(neural=True).audio_attempts(WordItem(word="кот", language="ru"), AUDIO_CHAIN)
    assert attempts[1].inputs["voice"] == "default"  # the neural voice speaks English only


async def test_transient_failures_are_tried_again_on_the_engine_clock() -> None:
    calls = {"image": 0}

    def busy_twice(name: str, models: list[str], inputs: dict[str, Any]) -> Any:
        calls["image"] += 1
        if calls["image"] <= 2:
            return TemporaryFailure("step 'image': genapi/z-image: 429", retry_after=7)
        return made_by_first(name, models, inputs)

    run = FakeRun({"word": "cat", "generate_audio": False}, answer=busy_twice)
    result = await recipe().run(run)
    assert result["image"]["status"] == "completed"
    assert run.clock.sleeps == [7, 7]

    def always_busy(name: str, models: list[str], inputs: dict[str, Any]) -> Any:
        return TemporaryFailure("step 'image': every model busy")

    run = FakeRun({"word": "cat", "generate_audio": False}, answer=always_busy)
    with pytest.raises(ItemFailed, match="every model busy"):
        await recipe().run(run)
    assert len(run.steps) == TRANSIENT_ROUNDS
    assert run.clock.sleeps == [RETRY_DELAY, RETRY_DELAY * 2]


async def test_cancellation_ends_the_word_at_once() -> None:
    def cancelled(name: str, models: list[str], inputs: dict[str, Any]) -> Any:
        return Stopped() if name == "image" else made_by_first(name, models, inputs)

    with pytest.raises(Stopped):
        await recipe().run(FakeRun({"word": "cat"}, answer=cancelled))


async def test_reuse_keys_name_the_word_language_models_and_inputs() -> None:
    run = FakeRun({"word": "cat"}, options={"skip_existing": True})
    await recipe().run(run)
    image = json.loads(steps_named(run, "image")[0]["key"])
    assert image["medium"] == "image"
    assert image["word"] == "cat"
    assert image["language"] == "en"
    assert image["models"] == IMAGE_CHAIN
    assert image["inputs"]["prompt"].startswith("A clear, simple picture")
    assert all(s["reuse"] is True for s in run.steps)
    plain = FakeRun({"word": "cat"})
    await recipe().run(plain)
    assert [s["key"] for s in plain.steps] == [s["key"] for s in run.steps]
    assert all(s["reuse"] is False for s in plain.steps)
    other = FakeRun({"word": "cat", "image_prompt": "a cat on a roof"})
    await recipe().run(other)
    assert steps_named(other, "image")[0]["key"] != steps_named(run, "image")[0]["key"]
    assert steps_named(other, "audio")[0]["key"] == steps_named(run, "audio")[0]["key"]


@pytest.mark.parametrize(
    ("word", "problem"),
    [
        ({"word": "   "}, "the word is empty"),
        ({"word": "x" * 201}, "at most 200 characters"),
        ({"word": "a\x00b"}, "control characters"),
        ({"word": "cat", "language": "klingon"}, "unknown language code: 'klingon'"),
        ({"word": "cat", "generate_image": False, "generate_audio": False}, "both false"),
        ({"word": "cat", "voice": "../../etc"}, "String should match pattern"),
    ],
)
def test_bad_words_are_refused_with_a_reason(word: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        WordItem.model_validate(word)


def test_the_audio_chain_decides_which_languages_can_be_spoken() -> None:
    media = recipe()
    options = WordMediaOptions()
    yoruba = WordItem(word="ológbò", language="yo")
    offline = lambda model_id: model_id.startswith("local/")  # noqa: E731
    online = lambda model_id: True  # noqa: E731
    problem = media.unspeakable(yoruba, options, offline)
    assert problem is not None
    assert "unknown language 'yo' for speech" in problem
    assert media.unspeakable(yoruba, options, online) is None  # a remote voice may speak it
    assert media.unspeakable(WordItem(word="кот", language="ru"), options, offline) is None
    picture_only = WordItem(word="ológbò", language="yo", generate_audio=False)
    assert media.unspeakable(picture_only, options, offline) is None
    assert media.models(options) == [*IMAGE_CHAIN, *AUDIO_CHAIN]
    chosen = WordMediaOptions(image_models=["kie/seedream-4.5"], audio_models=["local/tts"])
    assert media.models(chosen) == ["kie/seedream-4.5", "local/tts"]
