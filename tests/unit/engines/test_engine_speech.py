"""Speech: valid audio of plausible length in several languages; bad text and codes refused."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from conveyor.providers.local import EngineInputError, EngineOptions, EngineUnavailable
from conveyor.providers.local.speech import (
    clean_text,
    espeak_voices,
    load_piper,
    neural_voice_installed,
    resolve_voice,
    synthesize,
)
from tests.support.programs import requires_extra, requires_program

SENTENCE = {
    "en": "The quick brown fox jumps over the lazy dog.",
    "ru": "Съешь же ещё этих мягких французских булок.",
    "de": "Der schnelle braune Fuchs springt über den faulen Hund.",
}

pytestmark = requires_program("espeak-ng")


def _wav_seconds(data: bytes) -> tuple[float, wave._wave_params]:
    with wave.open(io.BytesIO(data)) as wav:
        params = wav.getparams()
        return params.nframes / params.framerate, params


@pytest.mark.parametrize("language", list(SENTENCE))
def test_espeak_speaks_a_valid_wav_of_plausible_length(language: str) -> None:
    speech = synthesize(SENTENCE[language], language)
    seconds, params = _wav_seconds(speech.audio)
    assert params.nchannels == 1
    assert params.sampwidth == 2
    assert params.framerate == 22050
    # ~9 words at espeak-ng's 175 words per minute: a couple of seconds, not 0, not 20.
    assert 1.0 < seconds < 8.0
    assert speech.duration_s == pytest.approx(seconds, abs=0.01)
    assert speech.engine == "espeak-ng"


def test_short_word_is_short() -> None:
    seconds, _ = _wav_seconds(synthesize("apple", "en").audio)
    assert 0.2 < seconds < 1.5


@requires_program("ffmpeg", "ffprobe")
@pytest.mark.parametrize(
    ("audio_format", "codecs"), [("ogg", {"opus", "vorbis"}), ("mp3", {"mp3"})]
)
def test_compressed_formats_decode(audio_format: str, codecs: set[str], tmp_path: Path) -> None:
    speech = synthesize(SENTENCE["en"], "en", audio_format=audio_format)
    # A file, not a pipe: ffprobe reads the duration from the end of an Ogg stream.
    path = tmp_path / f"speech.{audio_format}"
    path.write_bytes(speech.audio)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    described = json.loads(probe.stdout)
    assert described["streams"][0]["codec_name"] in codecs
    assert 1.0 < float(described["format"]["duration"]) < 8.0


@pytest.mark.parametrize(
    ("code", "voice"),
    [
        ("en", "en-us"),
        ("en-GB", "en-gb"),
        ("EN_us", "en-us"),
        ("pt-BR", "pt-br"),
        ("zh", "cmn"),
        ("ru-RU", "ru"),
    ],
)
def test_language_codes_map_to_espeak_voices(code: str, voice: str) -> None:
    assert resolve_voice(code, espeak_voices()) == voice


@pytest.mark.parametrize("code", ["xx", "klingon", "zz-ZZ"])
def test_unknown_language_lists_supported_ones(code: str) -> None:
    with pytest.raises(EngineInputError, match=r"unknown language .*supported include en, ru"):
        synthesize("hello", code)


@pytest.mark.parametrize("text", ["", "   \n\t ", "\x00\x01"])
def test_empty_text_is_refused(text: str) -> None:
    with pytest.raises(EngineInputError, match="empty"):
        synthesize(text, "en")


def test_hundred_kilobytes_of_text_is_refused_quickly() -> None:
    with pytest.raises(EngineInputError, match="limit for speech is 5,000"):
        synthesize("word " * 20_000, "en")


def test_text_limit_is_configurable() -> None:
    with pytest.raises(EngineInputError, match="limit for speech is 10"):
        synthesize("eleven chars", "en", options=EngineOptions(tts_max_chars=10))
    assert clean_text("ten chars!", 10) == "ten chars!"


@requires_extra("piper")
def test_neural_voice_speaks_english() -> None:
    assert neural_voice_installed()
    speech = synthesize(SENTENCE["en"], "en-US", voice="neural")
    seconds, params = _wav_seconds(speech.audio)
    assert speech.engine == "piper"
    assert params.framerate == 22050
    assert 1.0 < seconds < 8.0


def test_neural_voice_refuses_other_languages() -> None:
    with pytest.raises(EngineInputError, match="English only"):
        synthesize(SENTENCE["ru"], "ru", voice="neural")


def test_missing_piper_extra_is_unavailable_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry in sys.modules makes the import fail as if the extra were not installed.
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(EngineUnavailable) as caught:
        load_piper()
    assert caught.value.enable_with == "pip install -e '.[piper]'"
