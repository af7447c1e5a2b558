"""Rule-based translation with apertium, for the English↔Spanish pair Debian ships.

apertium is a pipeline of finite-state programs; ``apertium -f html eng-spa`` runs it with
the HTML deformatter, so tags and attributes pass through untouched and only text is
translated. ``-u`` drops the ``*`` that apertium puts before words it does not know. The
quality is that of a rule-based system: literal, sometimes wrong, never invented. Any other
pair is unavailable offline: Debian has no apertium pair between English and Russian,
German, Chinese, Japanese or Korean, and no neural translator runs here; such pairs need an
OpenAI-compatible translate model (a remote API, or a local Ollama/vLLM server).
"""

from __future__ import annotations

import functools
from typing import Any

from conveyor.providers.base import Availability
from conveyor.providers.local.engine import (
    SYSTEM_DEPS_HINT,
    EngineFailure,
    EngineInputError,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    find_program,
    run_program,
)

LLM_TRANSLATOR_HINT = (
    "list an OpenAI-compatible translate model in CONVEYOR_TRANSLATE_MODELS "
    "(openai/translate needs CONVEYOR_OPENAI_API_KEY)"
)
FORMATS = ("text", "html")
# ISO 639-1 → apertium's ISO 639-3 names for the languages worth naming in a message.
_APERTIUM_CODES = {
    "en": "eng", "es": "spa", "ru": "rus", "de": "deu", "fr": "fra", "it": "ita", "pt": "por",
    "zh": "zho", "ja": "jpn", "ko": "kor", "uk": "ukr", "ca": "cat", "gl": "glg",
}  # fmt: skip


@functools.cache
def installed_pairs(timeout: float = 10.0) -> frozenset[str]:
    """The translation modes apertium lists, e.g. ``eng-spa``."""
    listing = run_program(["apertium", "-l"], timeout=timeout, what="apertium -l")
    return frozenset(
        line.strip() for line in listing.decode("utf-8", "replace").splitlines() if line.strip()
    )


def language_code(language: str) -> str:
    """apertium's name for a language code (``en``, ``en-US``, ``eng`` → ``eng``)."""
    key = language.strip().lower().replace("_", "-")
    if not key:
        raise EngineInputError("language code is empty")
    primary = key.split("-")[0]
    return _APERTIUM_CODES.get(primary, primary)


def pair_for(source: str, target: str) -> str:
    """The installed mode for the two languages, or ``EngineUnavailable`` naming the way out."""
    pair = f"{language_code(source)}-{language_code(target)}"
    pairs = installed_pairs()
    if pair not in pairs:
        offered = (
            ", ".join(sorted(p.replace("-", "→") for p in pairs if p.count("-") == 1)) or "none"
        )
        raise EngineUnavailable(
            f"no offline translation for {source}→{target}: apertium here has {offered} only",
            LLM_TRANSLATOR_HINT,
        )
    return pair


def translate(
    text: str,
    source: str,
    target: str,
    *,
    text_format: str = "text",
    mark_unknown: bool = False,
    options: EngineOptions = EngineOptions(),
) -> str:
    """``text`` translated by apertium; HTML keeps its markup with ``text_format='html'``."""
    if text_format not in FORMATS:
        raise EngineInputError(f"unknown format '{text_format}'; use one of {', '.join(FORMATS)}")
    if not text.strip():
        raise EngineInputError("text is empty: nothing to translate")
    if len(text) > options.translate_max_chars:
        raise EngineInputError(
            f"text is {len(text):,} characters; "
            f"the limit for translation is {options.translate_max_chars:,}"
        )
    if language_code(source) == language_code(target):
        return text
    pair = pair_for(source, target)
    argv = ["apertium", "-f", "html" if text_format == "html" else "txt"]
    if not mark_unknown:
        argv.append("-u")
    out = run_program(
        [*argv, pair], stdin=text.encode("utf-8"), timeout=options.program_timeout, what="apertium"
    )
    translated = out.decode("utf-8", "replace")
    # apertium's text mode adds a trailing newline the input did not have.
    return translated.rstrip("\n") if not text.endswith("\n") else translated


def probe() -> Availability:
    try:
        find_program("apertium")
        pairs = installed_pairs()
    except EngineUnavailable as exc:
        return Availability(False, exc.message, exc.enable_with)
    except EngineFailure as exc:
        return Availability(False, str(exc), SYSTEM_DEPS_HINT)
    if not pairs & {"eng-spa", "spa-eng"}:
        return Availability(
            False, "the apertium-eng-spa language pair is not installed", SYSTEM_DEPS_HINT
        )
    return Availability(True)


def run(inputs: dict[str, Any], options: EngineOptions) -> EngineResult:
    """Entry point for ``local/apertium``."""
    source = inputs.get("source_language", "en")
    target = inputs["target_language"]
    translated = translate(
        inputs["text"],
        source,
        target,
        text_format=inputs.get("format", "text"),
        mark_unknown=bool(inputs.get("mark_unknown", False)),
        options=options,
    )
    return EngineResult(
        text=translated,
        data={
            "engine": "apertium",
            "rule_based": True,
            "source_language": source,
            "target_language": target,
            "pair": f"{language_code(source)}-{language_code(target)}",
            "text": translated,
        },
    )
