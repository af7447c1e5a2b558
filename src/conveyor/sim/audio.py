"""Audio for simulated speech: one short tone per word, as real WAV or raw PCM.

The pitch of each tone comes from a hash of its word, so the same text always sounds the
same and different texts differ; the length grows with the number of words up to a cap.
The format is OpenAI's ``pcm`` layout (24 kHz, 16-bit signed little-endian, mono), which
is also what goes inside the WAV container. Compressed formats (mp3, opus, aac, flac) need
an encoder the simulator does not have; callers fall back to WAV for those.
"""

from __future__ import annotations

import hashlib
import io
import wave

import numpy as np

SAMPLE_RATE = 24_000
_TONE_SECONDS = 0.12
_GAP_SECONDS = 0.04


def synthesize_pcm(text: str, *, max_seconds: float) -> bytes:
    """16-bit mono PCM at ``SAMPLE_RATE``: a tone per word, capped at ``max_seconds``."""
    words = text.split() or ["…"]
    per_word = _TONE_SECONDS + _GAP_SECONDS
    words = words[: max(1, int(max_seconds / per_word))]
    tone_time = np.arange(int(SAMPLE_RATE * _TONE_SECONDS)) / SAMPLE_RATE
    # A short fade in and out keeps the tones from clicking.
    envelope = np.minimum(1.0, np.minimum(tone_time, tone_time[::-1]) * 80)
    gap = np.zeros(int(SAMPLE_RATE * _GAP_SECONDS))
    pieces = []
    for word in words:
        digest = hashlib.sha256(word.lower().encode("utf-8")).digest()
        frequency = 180 + int.from_bytes(digest[:2], "big") % 420
        pieces.append(0.3 * envelope * np.sin(2 * np.pi * frequency * tone_time))
        pieces.append(gap)
    samples = np.concatenate(pieces)
    return (samples * 32767).astype("<i2").tobytes()


def wav_bytes(pcm: bytes, *, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Wrap 16-bit mono PCM in a WAV container."""
    output = io.BytesIO()
    with wave.open(output, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)
    return output.getvalue()
