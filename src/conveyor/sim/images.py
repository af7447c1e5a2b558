"""Real images drawn from a seed text, so simulated results decode like provider output.

Every picture is a two-colour gradient with one shape on it; the colours, the shape and its
place come from the SHA-256 of the seed text (the prompt plus the task id and output index),
so the same request is reproducible while two tasks never share bytes. A *cutout* is the
shape alone on a transparent background, which is what a background-removal model returns.

Background models (fal's FLUX Kontext LoRA and BiRefNet, Replicate's remove-background)
really answer with the request's own product on a transparent background. When the request
carries its image inline — a ``data:`` URL, which is how Conveyor hands a stored input to a
provider it cannot give a link to — ``cut_out`` makes that picture's cut-out instead: the
backdrop colour is the median of the border pixels, and alpha rises with each pixel's
distance from it, softly over a few levels so edges stay anti-aliased. That suits drawn
product photos (one product on a plain backdrop); a real photo gets a rough but honest mask.
An image given by http(s) URL is not fetched (the simulator makes no outbound requests), nor
is one that does not decode or is too large: those cut-outs are drawn.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageOps

ImageFormat = Literal["png", "jpeg", "webp"]


def _digest(seed_text: str) -> bytes:
    return hashlib.sha256(seed_text.encode("utf-8")).digest()


def _colour(digest: bytes, offset: int) -> tuple[int, int, int]:
    red, green, blue = digest[offset], digest[offset + 1], digest[offset + 2]
    return (red, green, blue)


def _draw_shape(canvas: Image.Image, digest: bytes, frame: int = 0, frames: int = 1) -> None:
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    side = max(2, min(width, height) * (30 + digest[9] % 30) // 100)
    # Animated frames slide the shape across, so each frame differs visibly.
    travel = (width - side) * frame // max(1, frames - 1) if frames > 1 else 0
    left = travel if frames > 1 else (width - side) * digest[10] // 255
    top = (height - side) * digest[11] // 255
    box = (left, top, left + side, top + side)
    fill = (*_colour(digest, 12), 255)
    match digest[15] % 3:
        case 0:
            draw.ellipse(box, fill=fill)
        case 1:
            draw.rectangle(box, fill=fill)
        case _:
            draw.polygon(
                [(left + side // 2, top), (left + side, top + side), (left, top + side)], fill=fill
            )


def _background(width: int, height: int, digest: bytes) -> Image.Image:
    # A 256-step gradient scaled up is far cheaper than drawing one line per row.
    gradient = Image.linear_gradient("L").rotate(90 * (digest[16] % 4))
    gray = gradient.resize((width, height), Image.Resampling.BILINEAR)
    return ImageOps.colorize(gray, _colour(digest, 0), _colour(digest, 3))


def draw_image(
    width: int,
    height: int,
    seed_text: str,
    *,
    image_format: ImageFormat = "png",
    cutout: bool = False,
) -> bytes:
    """Encoded image bytes of the given size and format."""
    digest = _digest(seed_text)
    if cutout:
        canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    else:
        canvas = _background(width, height, digest).convert("RGBA")
    _draw_shape(canvas, digest)
    output = io.BytesIO()
    if image_format == "jpeg":
        canvas.convert("RGB").save(output, format="JPEG", quality=85)
    elif image_format == "webp":
        canvas.save(output, format="WEBP", quality=80)
    else:
        # Fast compression: the simulator draws in benchmarks too; size hardly matters here.
        (canvas if cutout else canvas.convert("RGB")).save(output, format="PNG", compress_level=1)
    return output.getvalue()


def draw_animation(width: int, height: int, seed_text: str, *, frames: int = 6) -> bytes:
    """An animated GIF; stands in for video, which Pillow cannot encode."""
    digest = _digest(seed_text)
    background = _background(width, height, digest)
    pictures = []
    for frame in range(frames):
        canvas = background.convert("RGBA")
        _draw_shape(canvas, digest, frame, frames)
        pictures.append(canvas.convert("RGB").quantize(colors=64))
    output = io.BytesIO()
    pictures[0].save(
        output, format="GIF", save_all=True, append_images=pictures[1:], duration=120, loop=0
    )
    return output.getvalue()


# Beyond these an inline image is not decoded: the cut-out is drawn instead.
MAX_SOURCE_BYTES = 20 * 1024 * 1024
MAX_SOURCE_PIXELS = 40_000_000
# Colour distance (0–441 in RGB) at which a pixel starts to be, and is fully, the product.
BACKDROP_DISTANCE, PRODUCT_DISTANCE = 24.0, 48.0
_DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,(?P<payload>.+)", re.DOTALL)


def inline_image(reference: Any) -> bytes | None:
    """The bytes of a ``data:image/…;base64,`` reference, or ``None`` for anything else."""
    if not isinstance(reference, str) or len(reference) > MAX_SOURCE_BYTES * 4 // 3 + 100:
        return None
    match = _DATA_URL.fullmatch(reference.strip())
    if match is None:
        return None
    try:
        return base64.b64decode(match["payload"], validate=True)
    except (binascii.Error, ValueError):
        return None


def source_size(data: bytes, max_side: int) -> tuple[int, int] | None:
    """The size of the cut-out of ``data`` (its own, scaled to fit ``max_side``), read from
    the header alone; ``None`` if it is not a picture the simulator will decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # any decoder's complaint means "not usable"
        return None
    if width <= 0 or height <= 0 or width * height > MAX_SOURCE_PIXELS:
        return None
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def cut_out(source: bytes, width: int, height: int) -> bytes:
    """An RGBA PNG of ``source`` at ``width``×``height`` with its border-coloured backdrop
    made transparent (see the module docstring)."""
    with Image.open(io.BytesIO(source)) as image:
        image.draft("RGB", (width, height))
        picture = image.convert("RGB")
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(picture, dtype=np.float32)
    edges = (pixels[:2], pixels[-2:], pixels[:, :2], pixels[:, -2:])
    border = np.concatenate([edge.reshape(-1, 3) for edge in edges])
    backdrop = np.median(border, axis=0)
    distance = np.linalg.norm(pixels - backdrop, axis=2)
    ramp = (distance - BACKDROP_DISTANCE) / (PRODUCT_DISTANCE - BACKDROP_DISTANCE)
    alpha = np.rint(np.clip(ramp, 0.0, 1.0) * 255).astype(np.uint8)
    cut = Image.fromarray(np.dstack([np.asarray(picture), alpha]), "RGBA")
    buffer = io.BytesIO()
    cut.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
