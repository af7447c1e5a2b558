"""Product enhancement: a contrast stretch measured on the product alone, then sharpening.

Seed 004's ``enhance`` says only "improved processing"; here it is two corrections that are
safe on any product, made on the cut-out before it is placed on white:

1. **Levels.** The luminance of the product's pixels (alpha ≥ 128: the removed backdrop
   does not count) is measured, and its 0.5th and 99.5th percentiles are stretched to 0 and
   255. Each pixel's change of luminance is added to R, G and B alike, so the differences
   between the channels (hue and saturation) stay put and only lightness moves: a flat red
   product is not pushed to pure red. The gain is capped at ``MAX_GAIN`` (a murky photo is
   lifted, not blown into noise; a capped stretch widens the range about its middle), and a
   product whose range already spans ``FULL_RANGE`` of the scale is left alone.
2. **Sharpening.** An unsharp mask (radius 1.5 px, 60 %, threshold 3) in premultiplied
   alpha, so the hidden colour of transparent pixels never halos into the product's edge.

Alpha is never changed. There is no white balance on purpose: a red mug is not a colour
cast, and a backdrop colour chosen on purpose (teal, yellow) is no neutral reference either.
What was done is reported in the result's data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from conveyor.providers.local.catalogue_facts import ENHANCE_MAX_GAIN, always_available
from conveyor.providers.local.engine import EngineOptions, EngineResult, OutputFile
from conveyor.providers.local.image_decoding import SRGB_ICC, decode_image

LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5
MAX_GAIN = ENHANCE_MAX_GAIN
# A product whose luminance already spans this share of 0–255 needs no stretch.
FULL_RANGE = 0.9
# Pixels at least this opaque belong to the product when measuring it.
PRODUCT_ALPHA = 128
# Fewer product pixels than this say nothing reliable about its levels.
MIN_PRODUCT_PIXELS = 64
UNSHARP = ImageFilter.UnsharpMask(radius=1.5, percent=60, threshold=3)


@dataclass(frozen=True, slots=True)
class Levels:
    low: float
    high: float
    gain: float
    offset: float
    applied: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "low": round(self.low, 1),
            "high": round(self.high, 1),
            "gain": round(self.gain, 3),
            "applied": self.applied,
        }

    def lift(self) -> np.ndarray[Any, Any]:
        """What to add to R, G and B of a pixel, by its luminance (a 256-entry table)."""
        levels = np.arange(256, dtype=np.float32)
        table: np.ndarray[Any, Any] = np.rint(levels * (self.gain - 1) + self.offset)
        return table.astype(np.int16)


def measure_levels(luma: np.ndarray[Any, Any], alpha: np.ndarray[Any, Any] | None) -> Levels:
    """The stretch for these 8-bit luminances: ``value * gain + offset`` (module docstring)."""
    product = luma if alpha is None else luma[alpha >= PRODUCT_ALPHA]
    counts = np.bincount(product.reshape(-1), minlength=256)
    total = int(counts.sum())
    if total < MIN_PRODUCT_PIXELS:
        return Levels(0.0, 255.0, 1.0, 0.0, False)
    # Percentiles from the histogram: exact to the level, and one pass over the pixels.
    cumulative = np.cumsum(counts)
    low = float(np.searchsorted(cumulative, total * LOW_PERCENTILE / 100, side="right"))
    high = float(np.searchsorted(cumulative, total * HIGH_PERCENTILE / 100, side="left"))
    spread = high - low
    if spread >= FULL_RANGE * 255 or spread < 1.0:
        return Levels(low, high, 1.0, 0.0, False)
    gain = min(MAX_GAIN, 255.0 / spread)
    middle = (low + high) / 2
    new_low, new_high = middle - (middle - low) * gain, middle + (high - middle) * gain
    # Keep the widened range inside the scale, shifting it rather than clipping one end.
    shift = max(0.0, -new_low) - max(0.0, new_high - 255.0)
    return Levels(low, high, gain, middle * (1 - gain) + shift, True)


def enhance_image(
    data: bytes, *, sharpen: bool = True, max_pixels: int
) -> tuple[bytes, dict[str, Any]]:
    """The enhanced picture as PNG (alpha kept) and a report of what was done."""
    decoded = decode_image(data, max_pixels=max_pixels)
    picture = decoded.image
    pixels = np.asarray(picture)
    alpha = pixels[..., 3] if picture.mode == "RGBA" else None
    # Pillow's "L" is ITU-R BT.601 luma, computed in C.
    luma = np.asarray(picture.convert("RGB").convert("L"))
    levels = measure_levels(luma, alpha)
    if levels.applied:
        lifted = pixels[..., :3].astype(np.int16) + levels.lift()[luma][..., None]
        channels = [np.clip(lifted, 0, 255).astype(np.uint8)]
        if alpha is not None:
            channels.append(alpha[..., None])
        picture = Image.fromarray(np.concatenate(channels, axis=2), picture.mode)
    if sharpen:
        if picture.mode == "RGBA":
            picture = picture.convert("RGBa").filter(UNSHARP).convert("RGBA")
        else:
            picture = picture.filter(UNSHARP)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", icc_profile=SRGB_ICC, compress_level=6)
    report = {
        "engine": "pillow",
        "levels": levels.as_dict(),
        "sharpened": sharpen,
        "width": picture.width,
        "height": picture.height,
        "notes": decoded.notes,
    }
    return buffer.getvalue(), report


probe = always_available


def run(inputs: dict[str, Any], options: EngineOptions) -> EngineResult:
    """Entry point for ``local/enhance``."""
    data, report = enhance_image(
        inputs["image"],
        sharpen=bool(inputs.get("sharpen", True)),
        max_pixels=options.max_image_pixels,
    )
    return EngineResult(files=[OutputFile(data, "image/png", "enhanced.png")], data=report)
