"""Image finishing: the product on white (or a colour, or transparent), at a marketplace size.

The image is decoded by ``image_decoding`` (bomb limit, EXIF orientation, sRGB, any mode),
a cut-out is trimmed to its visible pixels, then scaled to fit the preset's canvas less a
margin and centred on the background; with ``shadow`` a cut-out first casts a soft drop
shadow on the background (``shadow.py``), so light products stay visible on white. Scaling
an RGBA image goes through premultiplied alpha, so the colour of transparent pixels never
bleeds into the edge. The output is PNG,
JPEG or WebP with an sRGB profile embedded (or the source's own profile, when
``color_profile: keep`` and the source was RGB); EXIF is not copied, its orientation having
been applied to the pixels.

Preset sizes and where they come from (also in ``docs/local-engines.md``):

* ``yandex-market`` 1000×1000. Yandex Market's partner help asks for at least 100 px a side,
  at least 600 px a side for the enlarged view, and no transparent background. The square
  and the 1000 px are our choice within those limits (an assumption).
* ``ozon`` 1200×1600. Ozon's seller documentation shows 3:4 images whole and puts margins
  around other ratios; the ratio is Ozon's, the pixel size is ours (an assumption), chosen
  above the 1000 px minimum that seller guides quote.
* ``wildberries`` 900×1200. Vertical 3:4, at least 900×1200, at most 8000 px a side, sRGB,
  as repeated by several Wildberries seller guides (Wildberries' own portal pages were not
  at hand).
* ``square`` 1000×1000 by default, ``size`` sets the side.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageColor

from conveyor.providers.local import shadow as drop_shadow
from conveyor.providers.local.catalogue_facts import (
    FORMATS,
    MAX_SIZE,
    MIN_SIZE,
    PRESETS,
    finish_probe,
)
from conveyor.providers.local.engine import (
    EngineInputError,
    EngineOptions,
    EngineResult,
    OutputFile,
)
from conveyor.providers.local.image_decoding import SRGB_ICC, decode_image

# Alpha at or below this is treated as empty when trimming a cut-out to its content.
TRIM_ALPHA = 8


@dataclass(slots=True)
class Finished:
    data: bytes
    mime_type: str
    format: str
    width: int
    height: int
    preset: str
    notes: list[str] = field(default_factory=list)


def parse_background(value: str) -> tuple[int, int, int] | None:
    """An RGB colour from a name or ``#rrggbb``; ``None`` for ``transparent``."""
    text = value.strip().lower()
    if text in ("transparent", "none"):
        return None
    try:
        rgb = ImageColor.getrgb(text)
    except ValueError as exc:
        raise EngineInputError(
            f"unknown background '{value}': use a colour name, #rrggbb, or transparent"
        ) from exc
    return (rgb[0], rgb[1], rgb[2])


def finish_image(
    image: bytes,
    *,
    preset: str = "square",
    size: int | None = None,
    background: str = "white",
    output_format: str = "png",
    quality: int = 90,
    margin: float = 0.05,
    color_profile: str = "srgb",
    trim: bool = True,
    upscale: bool = True,
    shadow: bool = False,
    max_pixels: int = EngineOptions().max_image_pixels,
) -> Finished:
    """Fit the picture onto the preset's canvas and encode it; see the module docstring."""
    if preset not in PRESETS:
        raise EngineInputError(f"unknown preset '{preset}'; use one of {', '.join(PRESETS)}")
    if output_format not in FORMATS:
        raise EngineInputError(f"unknown format '{output_format}'; use one of {', '.join(FORMATS)}")
    if color_profile not in ("srgb", "keep"):
        raise EngineInputError("color_profile must be 'srgb' or 'keep'")
    if not 1 <= quality <= 100:
        raise EngineInputError("quality must be between 1 and 100")
    if not 0.0 <= margin <= 0.4:
        raise EngineInputError("margin must be between 0 and 0.4")
    chosen = PRESETS[preset]
    width, height = chosen.width, chosen.height
    notes: list[str] = []
    if size is not None:
        if preset != "square":
            notes.append(f"size ignored: the {preset} preset is {width}×{height}")
        elif not MIN_SIZE <= size <= MAX_SIZE:
            raise EngineInputError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels")
        else:
            width = height = size
    fill = parse_background(background)
    if fill is None and not chosen.allow_transparent:
        raise EngineInputError(f"the {preset} preset does not accept a transparent background")
    if fill is None and output_format == "jpeg":
        raise EngineInputError(
            "JPEG cannot be transparent: choose png or webp, or a background colour"
        )

    pad = round(min(width, height) * margin)
    box = (max(1, width - 2 * pad), max(1, height - 2 * pad))
    decoded = decode_image(
        image, max_pixels=max_pixels, to_srgb=color_profile == "srgb", fit_within=box
    )
    notes.extend(decoded.notes)
    picture = decoded.image
    if trim and picture.mode == "RGBA":
        content = picture.getchannel("A").point(lambda a: 255 if a > TRIM_ALPHA else 0).getbbox()
        if content is None:
            raise EngineInputError("the image is fully transparent: nothing to place")
        picture = picture.crop(content)

    scale = min(box[0] / picture.width, box[1] / picture.height)
    if not upscale:
        scale = min(scale, 1.0)
    target = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    if target != picture.size:
        picture = _resize(picture, target)
    offset = ((width - target[0]) // 2, (height - target[1]) // 2)
    if fill is None:
        canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    else:
        canvas = Image.new("RGB", (width, height), fill)
    if shadow and picture.mode == "RGBA":
        canvas = drop_shadow.under(canvas, drop_shadow.shadow_mask(picture, canvas.size, offset))
    elif shadow:
        notes.append("shadow skipped: the image has no transparency to cast one from")
    if fill is None:
        canvas.alpha_composite(picture.convert("RGBA"), dest=offset)
    else:
        canvas.paste(picture, offset, mask=picture if picture.mode == "RGBA" else None)

    icc = decoded.icc_profile if color_profile == "keep" and decoded.icc_profile else SRGB_ICC
    data = _encode(canvas, output_format, quality, icc)
    return Finished(data, FORMATS[output_format][1], output_format, width, height, preset, notes)


def _resize(picture: Image.Image, target: tuple[int, int]) -> Image.Image:
    # reducing_gap: a cheap box pre-shrink before Lanczos, invisible at these ratios.
    gap = 3.0 if picture.width > 2 * target[0] else None
    if picture.mode == "RGBA":
        premultiplied = picture.convert("RGBa")
        return premultiplied.resize(target, Image.Resampling.LANCZOS, reducing_gap=gap).convert(
            "RGBA"
        )
    return picture.resize(target, Image.Resampling.LANCZOS, reducing_gap=gap)


def _encode(canvas: Image.Image, output_format: str, quality: int, icc: bytes) -> bytes:
    buffer = io.BytesIO()
    if output_format == "png":
        canvas.save(buffer, "PNG", icc_profile=icc, compress_level=6)
    elif output_format == "jpeg":
        canvas.convert("RGB").save(
            buffer,
            "JPEG",
            quality=quality,
            optimize=True,
            progressive=True,
            # Full-resolution colour at high quality: red product edges stay crisp.
            subsampling=0 if quality >= 90 else 2,
            icc_profile=icc,
        )
    else:
        canvas.save(buffer, "WEBP", quality=quality, method=4, icc_profile=icc)
    return buffer.getvalue()


probe = finish_probe


def run(inputs: dict[str, Any], options: EngineOptions) -> EngineResult:
    """Entry point for ``local/finish``."""
    size = inputs.get("size")
    done = finish_image(
        inputs["image"],
        preset=inputs.get("preset", "square"),
        size=int(size) if size is not None else None,
        background=inputs.get("background", "white"),
        output_format=inputs.get("format", "png"),
        quality=int(inputs.get("quality", 90)),
        margin=float(inputs.get("margin", 0.05)),
        color_profile=inputs.get("color_profile", "srgb"),
        trim=bool(inputs.get("trim", True)),
        upscale=bool(inputs.get("upscale", True)),
        shadow=bool(inputs.get("shadow", False)),
        max_pixels=options.max_image_pixels,
    )
    return EngineResult(
        files=[
            OutputFile(
                done.data,
                done.mime_type,
                f"final.{'jpg' if done.format == 'jpeg' else done.format}",
            )
        ],
        data={
            "engine": "pillow",
            "preset": done.preset,
            "width": done.width,
            "height": done.height,
            "format": done.format,
            "notes": done.notes,
        },
    )
