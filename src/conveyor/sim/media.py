"""What a simulated task produces, and how its files are handed out.

A task's outputs are ``MediaSpec`` values fixed at submission: what kind of file (an image,
a transparent cutout, an animation standing in for video, or speech audio), its size and
format, and the seed text its content is drawn from (a cut-out of a photo the request sent
inline is made from that photo instead: ``images.cut_out``). Bytes are drawn only when someone asks
(a download, or a ``data:``/base64 answer), off the event loop, with a small cache because a
client polling a base64 result asks for the same bytes repeatedly. ``encode`` turns bytes
into the three shapes providers use for files: a URL, a ``data:`` URL, or bare base64.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from conveyor.sim.audio import synthesize_pcm, wav_bytes
from conveyor.sim.config import Encoding, SimConfig
from conveyor.sim.images import (
    ImageFormat,
    cut_out,
    draw_animation,
    draw_image,
    inline_image,
    source_size,
)

MediaKind = Literal["image", "cutout", "animation", "audio"]

_CUTOUT_MARKERS = ("birefnet", "remove-background", "remove_background", "rembg", "remove-bg")
_ANIMATION_MARKERS = frozenset(
    {"video", "seedance", "kling", "veo", "veo3", "hailuo", "wan", "runway", "sora", "i2v", "t2v"}
)
_AUDIO_MARKERS = frozenset({"tts", "speech", "audio", "elevenlabs", "voice", "music", "suno"})
# GIF frames are costly to encode; "video" stays small whatever size was asked for.
_ANIMATION_MAX_SIDE = 256

# fal's named image sizes.
_FAL_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


@dataclass(frozen=True, slots=True)
class MediaSpec:
    """One output file, described well enough to draw it on demand."""

    kind: MediaKind
    seed_text: str
    width: int = 0
    height: int = 0
    image_format: ImageFormat = "png"
    spoken_text: str = ""
    max_seconds: float = 10.0
    # For a cut-out: the photo the request sent inline, whose subject it is (``images.cut_out``).
    source: bytes = dataclasses.field(default=b"", repr=False)

    @property
    def mime_type(self) -> str:
        if self.kind == "audio":
            return "audio/wav"
        if self.kind == "animation":
            return "image/gif"
        if self.kind == "cutout":
            return "image/png"
        return f"image/{self.image_format}"

    @property
    def extension(self) -> str:
        if self.kind == "audio":
            return "wav"
        if self.kind == "animation":
            return "gif"
        if self.kind == "cutout":
            return "png"
        return "jpg" if self.image_format == "jpeg" else self.image_format


def media_kind_for(model: str) -> MediaKind:
    """Guess what a model returns from its name (``fal-ai/birefnet`` → cutout, …)."""
    name = model.lower()
    if any(marker in name for marker in _CUTOUT_MARKERS):
        return "cutout"
    tokens = set(re.split(r"[/_\-.:\s]+", name))
    if tokens & _ANIMATION_MARKERS:
        return "animation"
    if tokens & _AUDIO_MARKERS:
        return "audio"
    return "image"


def _as_int(value: Any) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def requested_size(
    inputs: Mapping[str, Any], default: tuple[int, int] = (1024, 1024)
) -> tuple[int, int]:
    """The size a request asks for, in any of the ways providers spell it."""
    width, height = _as_int(inputs.get("width")), _as_int(inputs.get("height"))
    if width and height:
        return width, height
    size = inputs.get("size")
    if isinstance(size, str) and (match := re.fullmatch(r"\s*(\d+)\s*[x×*]\s*(\d+)\s*", size)):
        return int(match[1]), int(match[2])
    image_size = inputs.get("image_size")
    if isinstance(image_size, str) and image_size in _FAL_IMAGE_SIZES:
        return _FAL_IMAGE_SIZES[image_size]
    if isinstance(image_size, Mapping):
        width, height = _as_int(image_size.get("width")), _as_int(image_size.get("height"))
        if width and height:
            return width, height
    ratio = inputs.get("aspect_ratio")
    if isinstance(ratio, str) and (match := re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", ratio)):
        ratio_w, ratio_h = int(match[1]), int(match[2])
        if ratio_w and ratio_h:
            long_side = max(default)
            if ratio_w >= ratio_h:
                return long_side, max(1, long_side * ratio_h // ratio_w)
            return max(1, long_side * ratio_w // ratio_h), long_side
    return default


def capped_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale down, keeping the aspect ratio, so neither side exceeds ``max_side``."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    return max(1, width * max_side // longest), max(1, height * max_side // longest)


def requested_format(inputs: Mapping[str, Any]) -> ImageFormat:
    value = str(inputs.get("output_format") or inputs.get("format") or "png").lower()
    if value in ("jpg", "jpeg"):
        return "jpeg"
    return "webp" if value == "webp" else "png"


def prompt_of(inputs: Mapping[str, Any]) -> str:
    """The text a generation request is about (``prompt``, else ``text``/``input``)."""
    for key in ("prompt", "text", "input"):
        value = inputs.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def plan_outputs(
    config: SimConfig,
    model: str,
    inputs: Mapping[str, Any],
    *,
    owner_id: str,
    count: Any = 1,
    default_size: tuple[int, int] = (1024, 1024),
) -> list[MediaSpec]:
    """The files a request will produce: kind from the model, size and format from inputs."""
    kind = media_kind_for(model)
    number = min(config.max_outputs, _as_int(count) or 1) if kind in ("image", "cutout") else 1
    max_side = config.max_image_side
    if kind == "animation":
        max_side = min(max_side, _ANIMATION_MAX_SIDE)
    width, height = capped_size(*requested_size(inputs, default_size), max_side)
    prompt = prompt_of(inputs)
    return [
        MediaSpec(
            kind=kind,
            # The owner id makes every task's picture unique even for the same prompt.
            seed_text=f"{prompt}\x00{owner_id}\x00{index}",
            width=width,
            height=height,
            image_format=requested_format(inputs),
            spoken_text=prompt,
            max_seconds=config.max_audio_seconds,
        )
        for index in range(number)
    ]


def as_cutouts(outputs: Sequence[MediaSpec], image: Any, max_side: int) -> list[MediaSpec]:
    """``outputs`` as cut-outs of the request's ``image`` when it came inline, at its own
    size; else drawn ones."""
    source = inline_image(image)
    size = source_size(source, max_side) if source is not None else None
    if source is None or size is None:
        return [dataclasses.replace(spec, kind="cutout") for spec in outputs]
    width, height = size
    return [
        dataclasses.replace(spec, kind="cutout", width=width, height=height, source=source)
        for spec in outputs
    ]


@lru_cache(maxsize=64)
def render(spec: MediaSpec) -> bytes:
    """The file's bytes (deterministic for a given spec)."""
    if spec.kind == "cutout" and spec.source:
        # A header that decoded over a body that does not: the cut-out is drawn instead.
        with contextlib.suppress(OSError, ValueError, SyntaxError):
            return cut_out(spec.source, spec.width, spec.height)
    if spec.kind == "audio":
        return wav_bytes(synthesize_pcm(spec.spoken_text, max_seconds=spec.max_seconds))
    if spec.kind == "animation":
        return draw_animation(spec.width, spec.height, spec.seed_text)
    return draw_image(
        spec.width,
        spec.height,
        spec.seed_text,
        image_format=spec.image_format,
        cutout=spec.kind == "cutout",
    )


async def render_async(spec: MediaSpec) -> bytes:
    # Drawing and PNG encoding are CPU work: keep them off the event loop.
    return await asyncio.to_thread(render, spec)


def encode(data: bytes, mime_type: str, encoding: Encoding, url: str) -> str:
    """A file reference as providers give it: URL, ``data:`` URL, or bare base64."""
    if encoding == "url":
        return url
    encoded = base64.b64encode(data).decode("ascii")
    return f"data:{mime_type};base64,{encoded}" if encoding == "data_url" else encoded
