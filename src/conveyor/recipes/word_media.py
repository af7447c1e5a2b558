"""``word-media``: a picture and a pronunciation for one flashcard word (seed 002).

One item is one word: ``{word, language, generate_image, generate_audio, image_prompt,
voice}``. Its two media are independent durable steps run at the same time, so one failing
leaves the other:

- **image**: the settings' image chain (gen-api z-image, then OpenAI images, Replicate,
  Kie), prompted with ``media_image_prompt``, which asks for one clear object on a plain
  background and no text at all (a flashcard's picture must not give the word away). A
  word's own ``image_prompt`` replaces it.
- **audio**: the settings' speech chain (an OpenAI-compatible speech model, then
  ``local/tts``). Models that take different inputs are different steps tried in order
  (``audio``, ``audio-2``, ...): a remote speech model gets the client's ``voice``; the local
  engine gets the language and its own voice, piper's neural one for English where that
  extra is installed and espeak-ng otherwise, so audio is made offline with no key at all.

A medium whose models failed only for reasons that may pass (timeouts, 429, 5xx) is tried
again a few times on the engine clock before it counts as failed: the queue's retry would
run the whole word again and, once out of attempts, fail it without the medium that worked.

Each step carries a ``reuse_key`` (medium, word, language, models and their inputs, so the
prompt or voice too); with the job option ``skip_existing`` an identical medium the client
made before is taken from storage with no provider call (``reused: true``).

The result is ``{word, language, image?, audio?}``, each medium ``{status: completed,
asset_id, mime_type, size, model, reused, step, fallback_from?}`` or ``{status: failed,
error}`` (``fallback_from``: why earlier steps failed; the engine's provenance of ``step``
says which models of that step failed before). The word completes when at least one
medium was made (a failed one makes it *partial*, see ``partial_media``); it fails only
when every medium it asked for failed.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from conveyor.content.languages import UnknownLanguage, language_name, normalize_language, primary
from conveyor.errors import ConveyorError, ItemFailed
from conveyor.providers.base import ModelOutput
from conveyor.providers.local import speech
from conveyor.providers.local.engine import EngineFailure, EngineInputError, EngineUnavailable
from conveyor.recipes.base import ItemRun, Recipe, StrictModel

MAX_WORD = 200
MAX_PROMPT = 2000
MAX_VOICE = 64
MEDIA = ("image", "audio")
LOCAL_PREFIX = "local/"
# A medium that failed only transiently is tried this many times in all, waiting
# RETRY_DELAY, then twice that (or the provider's Retry-After) in between.
TRANSIENT_ROUNDS = 3
RETRY_DELAY = 5.0
LOCAL_AUDIO_FORMAT = "wav"  # no encoder needed; every browser plays it


def clean_word(value: str) -> str:
    """The word as it is drawn and spoken: NFC, whitespace runs made one space."""
    return " ".join(unicodedata.normalize("NFC", value).split())


class WordItem(StrictModel):
    """One word of a batch (seed 002's ``words[]`` entry)."""

    word: str = Field(..., max_length=MAX_WORD)
    language: str = Field("en", min_length=1, max_length=64)
    generate_image: bool = True
    generate_audio: bool = True
    image_prompt: str | None = Field(None, min_length=1, max_length=MAX_PROMPT)
    voice: str | None = Field(None, min_length=1, max_length=MAX_VOICE, pattern=r"^[\w.-]+$")

    @field_validator("word")
    @classmethod
    def _printable_word(cls, value: str) -> str:
        if not all(ch.isprintable() or ch.isspace() for ch in value):
            raise ValueError("the word has control characters")
        cleaned = clean_word(value)
        if not cleaned:
            raise ValueError("the word is empty")
        return cleaned

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        try:
            return normalize_language(value)
        except UnknownLanguage as exc:
            raise ValueError(exc.message) from exc

    @model_validator(mode="after")
    def _some_medium(self) -> WordItem:
        if not (self.generate_image or self.generate_audio):
            raise ValueError("generate_image and generate_audio are both false: nothing to make")
        return self


class WordMediaOptions(StrictModel):
    skip_existing: bool = Field(
        False, description="Reuse media this client already made for the same word and inputs"
    )
    image_models: list[str] | None = Field(None, min_length=1, max_length=10)
    audio_models: list[str] | None = Field(None, min_length=1, max_length=10)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One durable step of a medium: some models of its chain, all taking these inputs."""

    step: str
    models: list[str]
    inputs: dict[str, Any]


def partial_media(output: dict[str, Any] | None) -> list[str]:
    """The media of a completed word's result that failed (empty: nothing is missing)."""
    if not output:
        return []
    return [m for m in MEDIA if (output.get(m) or {}).get("status") == "failed"]


class WordMediaRecipe(Recipe):
    name = "word-media"
    title = "Word media (flashcards)"
    description = (
        "A text-free picture and a pronunciation per word, each from a fallback chain of "
        "models; one failing leaves the other. Audio falls back to offline speech."
    )
    item_model = WordItem
    options_model = WordMediaOptions

    def __init__(
        self,
        image_models: Sequence[str],
        audio_models: Sequence[str],
        image_prompt: str,
        *,
        neural_english: Callable[[], bool] = speech.neural_voice_installed,
    ) -> None:
        self.image_models = list(image_models)
        self.audio_models = list(audio_models)
        self.image_prompt = image_prompt
        self._neural_english = neural_english
        self._neural: bool | None = None

    def item_key(self, item: BaseModel) -> str | None:
        assert isinstance(item, WordItem)
        return item.word

    def chains(self, options: BaseModel) -> tuple[list[str], list[str]]:
        """The image and audio chains of a job with these options."""
        assert isinstance(options, WordMediaOptions)
        return options.image_models or self.image_models, options.audio_models or self.audio_models

    def models(self, options: BaseModel) -> list[str]:
        image, audio = self.chains(options)
        return list(dict.fromkeys([*image, *audio]))

    def prompt_for(self, item: WordItem) -> str:
        if item.image_prompt is not None:
            return item.image_prompt
        return self.image_prompt.format(word=item.word, language=language_name(item.language))

    def image_attempts(self, item: WordItem, chain: Sequence[str]) -> list[Attempt]:
        return _attempts("image", chain, lambda _model: {"prompt": self.prompt_for(item)})

    def audio_attempts(self, item: WordItem, chain: Sequence[str]) -> list[Attempt]:
        def inputs(model_id: str) -> dict[str, Any]:
            if model_id.startswith(LOCAL_PREFIX):
                neural = primary(item.language) == "en" and self._has_neural_voice()
                return {
                    "text": item.word,
                    "language": item.language,
                    "voice": "neural" if neural else "default",
                    "format": LOCAL_AUDIO_FORMAT,
                }
            return {"text": item.word, **({"voice": item.voice} if item.voice else {})}

        return _attempts("audio", chain, inputs)

    def _has_neural_voice(self) -> bool:
        if self._neural is None:
            self._neural = self._neural_english()
        return self._neural

    def unspeakable(
        self, item: WordItem, options: BaseModel, available: Callable[[str], bool]
    ) -> str | None:
        """Why no model of the audio chain can speak the word's language (None: one can).

        A remote speech model reads any language it is given, so it is taken at its word;
        offline, the language must be one espeak-ng has a voice for."""
        if not item.generate_audio:
            return None
        _, chain = self.chains(options)
        usable = [m for m in chain if available(m)]
        if not usable or any(not m.startswith(LOCAL_PREFIX) for m in usable):
            return None
        try:
            speech.resolve_voice(item.language, speech.espeak_voices())
        except EngineInputError as exc:
            return exc.message
        except (EngineUnavailable, EngineFailure):
            return None  # the engine is broken, not the language: the step will say so
        return None

    async def run(self, run: ItemRun) -> dict[str, Any]:
        item = WordItem.model_validate(run.input)
        options = WordMediaOptions.model_validate(run.options)
        image_chain, audio_chain = self.chains(options)
        wanted: dict[str, list[Attempt]] = {}
        if item.generate_image:
            wanted["image"] = self.image_attempts(item, image_chain)
        if item.generate_audio:
            wanted["audio"] = self.audio_attempts(item, audio_chain)
        made = await asyncio.gather(
            *(
                _medium(run, medium, item, attempts, reuse=options.skip_existing)
                for medium, attempts in wanted.items()
            ),
            return_exceptions=True,
        )
        # Cancellation and engine faults end the word; the other medium has seen the same
        # cancellation at its next look, or is kept as a finished step for the next run.
        results: dict[str, dict[str, Any]] = {}
        for medium, outcome in zip(wanted, made, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            results[medium] = outcome
        if all(r["status"] == "failed" for r in results.values()):
            reasons = "; ".join(f"{m}: {r['error']}" for m, r in results.items())
            raise ItemFailed(
                f"no medium could be made for {item.word!r}: {reasons}", code="NO_MEDIA"
            )
        return {"word": item.word, "language": item.language, **results}


def _attempts(
    medium: str, chain: Sequence[str], inputs_for: Callable[[str], dict[str, Any]]
) -> list[Attempt]:
    """The chain cut where the models' inputs change: each run of models taking the same
    inputs is one durable step with its own fallback chain."""
    attempts: list[Attempt] = []
    for model_id in chain:
        inputs = inputs_for(model_id)
        if attempts and attempts[-1].inputs == inputs:
            attempts[-1].models.append(model_id)
            continue
        name = medium if not attempts else f"{medium}-{len(attempts) + 1}"
        attempts.append(Attempt(name, [model_id], inputs))
    return attempts


def reuse_key(medium: str, item: WordItem, attempt: Attempt) -> str:
    """What makes two media the same: the medium, the word, its language, the models and
    everything they are given (the prompt, the voice)."""
    return json.dumps(
        {
            "medium": medium,
            "word": item.word,
            "language": item.language,
            "models": attempt.models,
            "inputs": attempt.inputs,
        },
        sort_keys=True,
        ensure_ascii=False,
    )


async def _medium(
    run: ItemRun, medium: str, item: WordItem, attempts: list[Attempt], *, reuse: bool
) -> dict[str, Any]:
    """One medium of the word: its attempts in order, transient failures tried again."""
    errors: list[str] = []
    for round_number in range(TRANSIENT_ROUNDS):
        errors = []
        transient: ConveyorError | None = None
        for attempt in attempts:
            try:
                output = await run.step(
                    attempt.step,
                    attempt.models,
                    attempt.inputs,
                    reuse_key=reuse_key(medium, item, attempt),
                    reuse=reuse,
                )
            except ConveyorError as exc:
                errors.append(exc.message)
                if exc.retryable:
                    transient = exc
                continue
            if output.files:
                return _made(attempt.step, output, errors)
            errors.append(f"{output.model_id} returned no file")
        if transient is None or round_number + 1 == TRANSIENT_ROUNDS:
            break
        await run.sleep(transient.retry_after or RETRY_DELAY * 2**round_number)
    return {"status": "failed", "error": "; ".join(errors) or "no model configured"}


def _made(step: str, output: ModelOutput, fallback_errors: list[str]) -> dict[str, Any]:
    file = output.files[0]
    result: dict[str, Any] = {
        "status": "completed",
        "step": step,
        "asset_id": file.asset_id,
        "mime_type": file.mime_type,
        "size": file.size,
        "model": output.model_id,
        "reused": output.reused,
    }
    if fallback_errors:
        result["fallback_from"] = fallback_errors
    return result
