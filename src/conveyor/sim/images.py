"""Real images drawn from a seed text, so simulated results decode like provider output.

Every picture is a two-colour gradient with one shape on it; the colours, the shape and its
place come from the SHA-256 of the seed text (the prompt plus the task id and output index),
so the same request is reproducible while two tasks never share bytes. A *cutout* is the
shape alone on a transparent background, which is what a background-removal model returns.
"""

from __future__ import annotations

import hashlib
import io
from typing import Literal

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
