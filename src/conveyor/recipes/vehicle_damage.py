"""``vehicle-damage``: describe a vehicle's damage from its photos, then translate it.

One item is one lot of seed 000 (``lot_id``, ``additional_info``, up to 20 image URLs):

1. **Images.** Every URL is fetched through the SSRF boundary (``run.fetch_input``), a few
   at a time, stored as an asset of the item and decoded (``check_image``) to prove it is a
   picture a model can look at. An image that cannot be used is skipped with a warning that
   says why; a lot with no usable image fails alone (other lots of the job go on).
2. **Describe.** A vision model (a fallback chain: the settings' ``describe_models`` or the
   job's option) gets an English prompt with ``additional_info`` and the stored images. Its
   answer is never trusted: ``sanitize_description_html`` keeps only ``<p> <ul> <li> <b> <i>
   <br>``.
3. **Translate.** One ``translate:{language}`` step per other requested language, all at
   once. With ``translation_budget`` (sync requests) they share that many seconds of the
   engine clock (``run.sleep``, so tests move time by hand); a language not done in time,
   or whose translation failed for good, gets the English text and a warning naming it.

Every step is durable, so a lot resumed after a crash or retried pays only for what is
missing. The result is ``{"lot_id", "descriptions": [{"language", "damages"}], "warnings",
"language_warnings"}``; ``language_warnings`` maps a language to its fallback warning so an
answer that lists only some languages can show only theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conveyor.content.html import sanitize_description_html
from conveyor.content.images import (
    DEFAULT_MAX_PIXELS,
    PIXEL_LIMIT_SETTING,
    ImageRejected,
    check_image,
)
from conveyor.content.languages import language_name, primary
from conveyor.errors import ItemFailed, TemporaryFailure
from conveyor.net.errors import FetchError, FetchFailed
from conveyor.providers.base import FileInput, StoredFile
from conveyor.recipes.base import ItemRun, Recipe, StrictModel

MAX_IMAGES = 20
MAX_ADDITIONAL_INFO = 20_000
MAX_LOT_ID = 200
MAX_URL = 2048
SOURCE_LANGUAGE = "en"
DEFAULT_DESCRIBE_MODELS = ("openai/vision",)
DEFAULT_TRANSLATE_MODELS = ("openai/translate",)
# Downloads of one lot at a time; the HTTP pool bounds the whole worker anyway, this keeps
# one 20-image lot from taking all of it.
IMAGE_FETCH_CONCURRENCY = 6

DESCRIBE_SYSTEM_PROMPT = (
    "You are an experienced vehicle damage appraiser. You describe only the damage that is "
    "visible in the photos, precisely and without speculation."
)
DESCRIBE_PROMPT = """\
Describe the visible damage to this vehicle from the {count} attached photo{plural}.
Additional info: {info}

Write in English. Answer with HTML only, using no tags other than <p>, <ul>, <li>, <b>, <i> \
and <br>: one short paragraph summarising the vehicle's condition, then a list with one item \
per damaged part in the form <li><b>Part</b>: what is wrong and how severe</li>. If no damage \
is visible, say so in one paragraph. Do not estimate repair costs."""
TRANSLATE_SYSTEM_PROMPT = (
    "You are a professional translator. Translate the user's text from English into "
    "{language}. Keep every HTML tag exactly as it is. Answer with the translation only."
)


class LotImage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(..., min_length=1, max_length=MAX_URL, pattern=r"^[hH][tT][tT][pP][sS]?://")


class Lot(BaseModel):
    """One vehicle. Not whitespace-stripped: ``lot_id`` comes back exactly as sent."""

    model_config = ConfigDict(extra="forbid")

    lot_id: str = Field(..., min_length=1, max_length=MAX_LOT_ID)
    additional_info: str = Field("", max_length=MAX_ADDITIONAL_INFO)
    images: list[LotImage] = Field(..., min_length=1, max_length=MAX_IMAGES)


class VehicleDamageOptions(StrictModel):
    describe_models: list[str] | None = Field(
        None, min_length=1, max_length=10, description="Vision models to try, in order"
    )
    translate_models: list[str] | None = Field(
        None, min_length=1, max_length=10, description="Translation models to try, in order"
    )
    translation_budget: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="Seconds all translations of a lot may take together; then English",
    )


@dataclass
class _Notes:
    """Warnings of one lot: every one goes to ``run.warn``; fallbacks also by language."""

    run: ItemRun
    all: list[str] = field(default_factory=list)
    by_language: dict[str, str] = field(default_factory=dict)

    def add(self, message: str, *, language: str | None = None) -> None:
        self.run.warn(message)
        if message not in self.all:
            self.all.append(message)
        if language is not None:
            self.by_language[language] = message


class VehicleDamageRecipe(Recipe):
    name = "vehicle-damage"
    title = "Vehicle damage descriptions"
    description = (
        "Describes a vehicle's damage from its photos with a vision model (English, safe "
        "HTML), then translates it into every requested language. Item: a lot with "
        "`lot_id`, `additional_info` and up to 20 `images` as `{url}`."
    )
    stages = ("describing", "translating")
    item_model = Lot
    options_model = VehicleDamageOptions

    def __init__(
        self,
        describe_models: Sequence[str] = DEFAULT_DESCRIBE_MODELS,
        translate_models: Sequence[str] = DEFAULT_TRANSLATE_MODELS,
        *,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.max_image_pixels = max_image_pixels
        self.describe_models = list(describe_models)
        self.translate_models = list(translate_models)

    def parse_options(self, options: dict[str, Any]) -> BaseModel:
        # The job records the chains it was created with, so a later change of the settings
        # does not change what a queued job calls.
        parsed = super().parse_options(options)
        assert isinstance(parsed, VehicleDamageOptions)
        return parsed.model_copy(
            update={
                "describe_models": parsed.describe_models or self.describe_models,
                "translate_models": parsed.translate_models or self.translate_models,
            }
        )

    def item_key(self, item: BaseModel) -> str | None:
        assert isinstance(item, Lot)
        return item.lot_id

    def models(self, options: BaseModel) -> list[str]:
        assert isinstance(options, VehicleDamageOptions)
        chain = [*(options.describe_models or self.describe_models)]
        chain += options.translate_models or self.translate_models
        return list(dict.fromkeys(chain))

    async def run(self, run: ItemRun) -> dict[str, Any]:
        lot = Lot.model_validate(run.input)
        options = VehicleDamageOptions.model_validate(run.options)
        languages = run.languages or [SOURCE_LANGUAGE]
        notes = _Notes(run)

        # Said out loud so the job shows ``processing`` while the photos are fetched and
        # described: the first write of a step would come only after the vision answer.
        await run.set_stage("describing")
        images = await self._usable_images(run, lot, notes)
        described = await run.step(
            "describe",
            options.describe_models or self.describe_models,
            describe_inputs(lot, images),
        )
        english = sanitize_description_html(described.text or "")
        if not english.strip():
            raise ItemFailed(
                "the description model answered with no usable text", code="EMPTY_DESCRIPTION"
            )

        targets = [code for code in languages if primary(code) != SOURCE_LANGUAGE]
        translations: dict[str, str] = {}
        if targets:
            await run.set_stage("translating")
            translations = await self._translate_all(
                run,
                english,
                targets,
                options.translate_models or self.translate_models,
                options.translation_budget,
                notes,
            )
        return {
            "lot_id": lot.lot_id,
            "descriptions": [
                {"language": code, "damages": translations.get(code, english)} for code in languages
            ],
            "warnings": notes.all,
            "language_warnings": notes.by_language,
        }

    # -- images ------------------------------------------------------------------------

    async def _usable_images(self, run: ItemRun, lot: Lot, notes: _Notes) -> list[StoredFile]:
        limit = asyncio.Semaphore(IMAGE_FETCH_CONCURRENCY)

        async def one(number: int, url: str) -> StoredFile | FetchError | str:
            async with limit:
                return await _fetch_image(run, number, url, notes, self.max_image_pixels)

        outcomes = await asyncio.gather(
            *(one(number, image.url) for number, image in enumerate(lot.images, start=1))
        )
        usable: list[StoredFile] = []
        problems: list[str] = []
        retryable: list[FetchError] = []
        for number, outcome in enumerate(outcomes, start=1):
            if isinstance(outcome, StoredFile):
                usable.append(outcome)
                continue
            reason = outcome.message if isinstance(outcome, FetchError) else outcome
            if isinstance(outcome, FetchError) and outcome.retryable:
                retryable.append(outcome)
            problems.append(f"image {number}: {reason}")
        if usable:
            for problem in problems:
                notes.add(f"{problem}; skipped")
            return usable
        summary = f"no usable image in lot {lot.lot_id!r}: " + "; ".join(problems)
        if retryable:
            # Only transient failures stand between this lot and a description (a CDN 503,
            # a timeout): let the queue try the lot again later, then fail it with this text.
            raise FetchFailed(summary, retryable=True)
        raise ItemFailed(summary, code="NO_USABLE_IMAGES")

    # -- translations ------------------------------------------------------------------

    async def _translate_all(
        self,
        run: ItemRun,
        english: str,
        targets: list[str],
        models: list[str],
        budget: float | None,
        notes: _Notes,
    ) -> dict[str, str]:
        tasks = {
            code: asyncio.create_task(
                _translate(run, english, code, models), name=f"translate:{code}"
            )
            for code in targets
        }
        try:
            if budget is None:
                await asyncio.wait(tasks.values())
            else:
                await _wait_within(tasks.values(), run.sleep(budget))
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

        translations: dict[str, str] = {}
        postponed: BaseException | None = None
        for code, task in tasks.items():
            name = language_label(code)
            fallback = "the English text is given instead"
            if task.cancelled():
                notes.add(
                    f"translation to {name} did not finish within the {budget:g} s "
                    f"translation budget; {fallback}",
                    language=code,
                )
                continue
            error = task.exception()
            if error is None:
                text = task.result()
                if text:
                    translations[code] = text
                else:
                    notes.add(f"translation to {name} came back empty; {fallback}", language=code)
            elif isinstance(error, ItemFailed) or (
                budget is not None and isinstance(error, TemporaryFailure)
            ):
                # A sync answer cannot wait for a retry later; a batch can (below).
                notes.add(f"translation to {name} failed ({error}); {fallback}", language=code)
            elif postponed is None:
                postponed = error
        if postponed is not None:
            # Finished translations are checkpointed; a retry of the lot redoes only the rest.
            raise postponed
        return translations


def describe_inputs(lot: Lot, images: Sequence[StoredFile]) -> dict[str, Any]:
    """What the vision model gets: the English prompt and the stored images."""
    count = len(images)
    info = " ".join(lot.additional_info.split()) or "(none given)"
    return {
        "system_prompt": DESCRIBE_SYSTEM_PROMPT,
        "prompt": DESCRIBE_PROMPT.format(count=count, plural="" if count == 1 else "s", info=info),
        "images": [FileInput(asset_id=f.asset_id, mime_type=f.mime_type) for f in images],
        "max_tokens": 1500,
    }


def translate_inputs(english: str, code: str) -> dict[str, Any]:
    """Inputs for translation models of both shapes: ``text``/``target_language`` ones
    (``openai/translate``) and chat ones that take ``prompt``/``system_prompt``."""
    language = language_name(code)
    return {
        "text": english,
        "target_language": language,
        "source_language": "English",
        "system_prompt": TRANSLATE_SYSTEM_PROMPT.format(language=language),
        "prompt": english,
    }


async def _fetch_image(
    run: ItemRun, number: int, url: str, notes: _Notes, max_pixels: int
) -> StoredFile | FetchError | str:
    """The stored image, or why it cannot be used (a fetch error or a sentence)."""
    try:
        stored = await run.fetch_input(url, images_only=True)
    except FetchError as exc:
        return exc
    data = await run.files.read(FileInput(asset_id=stored.asset_id))
    try:
        info = await asyncio.to_thread(
            check_image, data, max_pixels, limit_setting=PIXEL_LIMIT_SETTING
        )
    except ImageRejected as exc:
        return exc.message
    for note in info.warnings:
        notes.add(f"image {number}: {note}; the description may be poor")
    return stored


def language_label(code: str) -> str:
    """``ru`` → "Russian (ru)", ``pt-BR`` → "Portuguese (Brazil, pt-BR)": for warnings."""
    name = language_name(code)
    return f"{name[:-1]}, {code})" if name.endswith(")") else f"{name} ({code})"


async def _translate(run: ItemRun, english: str, code: str, models: list[str]) -> str:
    output = await run.step(f"translate:{code}", models, translate_inputs(english, code))
    return sanitize_description_html(output.text or "")


async def _wait_within(tasks: Iterable[asyncio.Task[str]], timer: Awaitable[None]) -> None:
    """Until every task is done or ``timer`` (a coroutine, e.g. ``run.sleep``) returns."""
    clock = asyncio.ensure_future(timer)
    pending: set[asyncio.Future[Any]] = set(tasks)
    try:
        while pending:
            done, _ = await asyncio.wait(pending | {clock}, return_when=asyncio.FIRST_COMPLETED)
            if clock in done:
                return
            pending -= done
    finally:
        clock.cancel()
