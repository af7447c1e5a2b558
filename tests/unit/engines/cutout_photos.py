"""Drawn product photos with known layers, for measuring cut-out quality.

Each photo is composed the way a camera sees a product on a studio backdrop:
``photo = alpha · foreground + (1 − alpha) · backdrop``, plus sensor noise. The three
layers are drawn here, deterministically (fixed seeds, Pillow + numpy only), so the true
alpha, the product's own colour under every edge pixel and the backdrop behind it are all
known. What makes them look like photos rather than toy shapes: lit backdrops (a sweep from
light to dark, a vignette, faint mottling), soft contact and cast shadows drawn into the
backdrop (they are not part of the product), cylindrical shading and specular highlights on
the products, glaze speckles and ribs for texture, edges anti-aliased by drawing at
``SUPERSAMPLE``× and softened like a lens.

The set, committed as PNGs in ``tests/data/cutouts/`` (``python -m
tests.unit.engines.cutout_photos`` redraws them; a test checks the files still match):

* ``mug`` — a glazed terracotta mug on teal; the backdrop shows through its handle.
* ``bottle`` — a blue bottle with a ribbed white cap and a paper label on yellow.
* ``sneaker`` — a white sneaker on light grey: low contrast, a strong contact shadow.
* ``glass`` — a clear tumbler on slate: partial alpha over its body (0.28), thick rim, walls
  and base.

Per photo: ``NAME.png`` (the photo, RGB), ``NAME_alpha.png`` (true alpha, L),
``NAME_foreground.png`` (the product's colour, RGB; meaningful where alpha > 0) and
``NAME_backdrop.png`` (the backdrop with its shadows, RGB).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 800, 600
SUPERSAMPLE = 4
DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "cutouts"
PHOTOS = ("mug", "bottle", "sneaker", "glass")
NOISE_SIGMA = 2.0

Array = np.ndarray[Any, np.dtype[np.float32]]
Draw = Callable[[ImageDraw.ImageDraw, float], None]


@dataclass(frozen=True, slots=True)
class CutoutPhoto:
    name: str
    photo: np.ndarray[Any, np.dtype[np.uint8]]  # H×W×3
    alpha: Array  # H×W, 0..1
    foreground: Array  # H×W×3, 0..255
    backdrop: Array  # H×W×3, 0..255

    def png(self) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(self.photo).save(buffer, "PNG")
        return buffer.getvalue()


def _grid() -> tuple[Array, Array]:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    return xs, ys


def coverage(draw: Draw, soften: float = 0.6) -> Array:
    """An anti-aliased 0..1 mask: drawn at SUPERSAMPLE×, box-filtered down, lens-softened."""
    big = Image.new("L", (WIDTH * SUPERSAMPLE, HEIGHT * SUPERSAMPLE), 0)
    draw(ImageDraw.Draw(big), float(SUPERSAMPLE))
    small = big.resize((WIDTH, HEIGHT), Image.Resampling.BOX)
    if soften > 0:
        small = small.filter(ImageFilter.GaussianBlur(soften))
    return np.asarray(small, dtype=np.float32) / 255.0


def _blur(plane: Array, radius: float) -> Array:
    image = Image.fromarray(np.clip(plane * 255.0, 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), np.float32) / 255.0


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> Draw:
    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        d.ellipse(((cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s), fill=255)

    return draw


def _polygon(points: list[tuple[float, float]]) -> Draw:
    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        d.polygon([(x * s, y * s) for x, y in points], fill=255)

    return draw


def _rounded(box: tuple[float, float, float, float], radius: float) -> Draw:
    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rounded_rectangle(tuple(v * s for v in box), radius=radius * s, fill=255)

    return draw


def _union(*parts: Draw) -> Draw:
    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        for part in parts:
            part(d, s)

    return draw


def backdrop(colour: tuple[int, int, int], rng: np.random.Generator, light: float = 0.1) -> Array:
    """A studio sweep: lighter at the top left, a vignette, and faint low-frequency mottling."""
    xs, ys = _grid()
    u, v = xs / WIDTH, ys / HEIGHT
    sweep = 1.0 + light * (0.6 - v) + 0.4 * light * (0.5 - u)
    radius2 = ((u - 0.45) / 0.9) ** 2 + ((v - 0.4) / 0.9) ** 2
    vignette = 1.0 - 0.35 * radius2
    mottle = Image.fromarray(rng.normal(0.0, 1.0, (6, 8)).astype(np.float32), mode="F")
    mottle_plane = np.asarray(mottle.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
    gain = (sweep * vignette * (1.0 + 0.012 * mottle_plane))[..., None]
    return np.asarray(np.array(colour, np.float32) * gain, np.float32)


def shade_backdrop(back: Array, shadow: Array, strength: float) -> Array:
    """Darken the backdrop under a 0..1 shadow map (a shadow keeps the backdrop's hue)."""
    return np.asarray(back * (1.0 - strength * shadow)[..., None], np.float32)


def cylinder(xs: Array, left: float, right: float, ambient: float = 0.55) -> Array:
    """Lambert shading across a vertical cylinder lit from the front left, 0.. ~1.1."""
    u = np.clip((xs - left) / max(1.0, right - left) * 2.0 - 1.0, -1.0, 1.0)
    lambert = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    light = ambient + (1.0 - ambient) * lambert * (1.0 - 0.25 * u)
    return np.asarray(light, np.float32)


def specular(xs: Array, centre: float, width: float, strength: float) -> Array:
    return np.asarray(strength * np.exp(-(((xs - centre) / width) ** 2)), np.float32)


def compose(
    name: str,
    alpha: Array,
    foreground: Array,
    back: Array,
    rng: np.random.Generator,
) -> CutoutPhoto:
    fg = np.clip(foreground, 0, 255).astype(np.float32)
    bg = np.clip(back, 0, 255).astype(np.float32)
    mixed = alpha[..., None] * fg + (1.0 - alpha[..., None]) * bg
    noisy = mixed + rng.normal(0.0, NOISE_SIGMA, mixed.shape).astype(np.float32)
    photo = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    # Store the layers as 8-bit, exactly as they are committed.
    alpha8 = np.round(alpha * 255.0) / 255.0
    return CutoutPhoto(
        name,
        photo,
        alpha8.astype(np.float32),
        np.round(fg).astype(np.float32),
        np.round(bg).astype(np.float32),
    )


def draw_mug() -> CutoutPhoto:
    rng = np.random.default_rng(101)
    xs, ys = _grid()
    cx, half, top, bottom = 370.0, 95.0, 190.0, 470.0
    body = _union(
        _rounded((cx - half, top, cx + half, bottom), 6),
        _ellipse(cx, top, half, 13),
        _ellipse(cx, bottom, half, 13),
    )
    handle_outer = _ellipse(cx + half + 25, 330, 48, 76)
    hole = _ellipse(cx + half + 31, 330, 16, 40)
    body_cov = coverage(body)
    ring = np.clip(coverage(handle_outer) - coverage(hole, soften=0.0), 0, 1)
    ring = _blur(ring, 0.6)
    alpha = np.maximum(body_cov, ring)

    glaze = np.array([196, 84, 52], np.float32)
    light = cylinder(xs, cx - half, cx + half)
    body_rgb = glaze * light[..., None] + specular(xs, cx - 40, 9, 70)[..., None]
    # The handle is a tube: shade by the distance from its mid-line ellipse.
    hx, hy = (xs - (cx + half + 28)) / 32.0, (ys - 330) / 58.0
    tube = np.clip(1.0 - np.abs(np.sqrt(hx * hx + hy * hy) - 1.0) * 3.2, 0, 1)
    handle_rgb = glaze * (0.5 + 0.5 * tube)[..., None] + (18 * tube**6)[..., None]
    inside = coverage(_ellipse(cx, top + 1, half - 9, 9))
    inner_rgb = glaze * (0.32 + 0.25 * (xs - cx + half) / (2 * half))[..., None]
    fg = np.where((ring > body_cov)[..., None], handle_rgb, body_rgb)
    fg = fg * (1 - inside[..., None]) + inner_rgb * inside[..., None]
    # Glaze speckles: small dark flecks, part of the product's own colour.
    flecks = _blur((rng.random((HEIGHT, WIDTH)) > 0.996).astype(np.float32), 0.7)
    fg = fg * (1.0 - 0.6 * np.clip(flecks * 4, 0, 1))[..., None]

    back = backdrop((38, 128, 134), rng, light=0.18)
    contact = _blur(coverage(_ellipse(cx, bottom + 4, half + 20, 14)), 9)
    cast = _blur(coverage(_ellipse(cx + 90, bottom - 6, half + 70, 26)), 26)
    back = shade_backdrop(back, np.clip(contact * 1.0 + cast * 0.5, 0, 1), 0.55)
    return compose("mug", alpha, fg, back, rng)


def _bottle_outline() -> list[tuple[float, float]]:
    cx = 400.0
    right: list[tuple[float, float]] = []
    for y in np.linspace(150, 500, 120):
        t = np.clip((y - 160) / 85.0, 0, 1)
        half = 23 + (62 - 23) * (t * t * (3 - 2 * t))
        right.append((cx + float(half), float(y)))
    for angle in np.linspace(0, np.pi / 2, 12):
        right.append((cx + 47 + 15 * float(np.cos(angle)), 500 + 15 * float(np.sin(angle))))
    left = [(2 * cx - x, y) for x, y in reversed(right)]
    return right + left


def draw_bottle() -> CutoutPhoto:
    rng = np.random.default_rng(202)
    xs, ys = _grid()
    cx = 400.0
    body_cov = coverage(_polygon(_bottle_outline()))
    cap_box = (cx - 30, 96, cx + 30, 156)
    cap_cov = coverage(_rounded(cap_box, 7))
    alpha = np.maximum(body_cov, cap_cov)

    blue = np.array([28, 62, 156], np.float32)
    body_rgb = blue * cylinder(xs, cx - 62, cx + 62, 0.45)[..., None]
    body_rgb = (
        body_rgb + specular(xs, cx - 28, 7, 95)[..., None] + specular(xs, cx + 40, 4, 30)[..., None]
    )
    label = coverage(_rounded((cx - 70, 300, cx + 70, 420), 0), soften=0.3)
    paper = np.array([242, 238, 226], np.float32) * cylinder(xs, cx - 62, cx + 62, 0.7)[..., None]
    stripe = (np.abs(ys - 318) < 7).astype(np.float32)
    paper = (
        paper * (1 - stripe[..., None]) + np.array([200, 40, 45], np.float32) * stripe[..., None]
    )
    lines = ((ys > 345) & (ys < 400) & ((ys.astype(int) // 7) % 2 == 0)).astype(np.float32)
    lines *= (np.abs(xs - cx) < 40).astype(np.float32)
    paper = paper * (1 - 0.55 * lines[..., None])
    fg = body_rgb * (1 - label[..., None]) + paper * label[..., None]
    ribs = 1.0 + 0.07 * np.sin((xs - cx) * 1.3)
    cap_rgb = (
        np.array([236, 236, 232], np.float32)
        * (cylinder(xs, cx - 30, cx + 30, 0.72) * ribs)[..., None]
    )
    fg = np.where((cap_cov > 0.5)[..., None] | (ys < 156)[..., None], cap_rgb, fg)
    fg = fg * (1.0 + rng.normal(0.0, 0.01, (HEIGHT, WIDTH, 1))).astype(np.float32)

    back = backdrop((236, 196, 64), rng, light=0.12)
    contact = _blur(coverage(_ellipse(cx, 513, 72, 9)), 7)
    cast = _blur(coverage(_ellipse(cx + 70, 505, 120, 20)), 22)
    back = shade_backdrop(back, np.clip(contact + 0.45 * cast, 0, 1), 0.5)
    return compose("bottle", alpha, fg, back, rng)


def draw_sneaker() -> CutoutPhoto:
    rng = np.random.default_rng(303)
    xs, ys = _grid()
    sole = _polygon(
        [(150, 408), (640, 402), (662, 414), (660, 436), (630, 446), (190, 448), (158, 440)]
    )
    upper = _polygon(
        [
            (162, 410),
            (165, 330),
            (185, 265),
            (230, 240),
            (300, 250),
            (360, 290),
            (450, 325),
            (560, 345),
            (625, 365),
            (652, 392),
            (645, 410),
        ]
    )
    sole_cov = coverage(sole)
    upper_cov = coverage(upper)
    alpha = np.maximum(sole_cov, upper_cov)

    white = np.array([246, 246, 243], np.float32)
    # Soft studio light from above: the upper darkens toward its lower, back part.
    upper_light = np.clip(1.0 - 0.06 * (ys - 240) / 170.0 - 0.025 * (450 - xs) / 300.0, 0.9, 1.0)
    fg = white * upper_light[..., None]
    collar = coverage(_ellipse(232, 258, 46, 13))
    fg = fg * (1 - collar[..., None]) + np.array([78, 74, 70], np.float32) * collar[..., None]
    midsole = ((ys > 413) & (ys < 417)).astype(np.float32)
    fg = fg * (1 - midsole[..., None]) + np.array([168, 184, 206], np.float32) * midsole[..., None]
    outsole = (ys > 441).astype(np.float32)
    fg = fg * (1 - outsole[..., None]) + np.array([196, 192, 184], np.float32) * outsole[..., None]
    swoosh = coverage(
        _polygon([(300, 385), (420, 350), (540, 360), (430, 372), (330, 395), (305, 393)])
    )
    fg = fg * (1 - swoosh[..., None]) + np.array([150, 176, 212], np.float32) * swoosh[..., None]
    for i in range(5):
        ex, ey = 300 + 34 * i, 282 + 14 * i
        eyelet = coverage(_ellipse(ex, ey, 4, 4))
        fg = (
            fg * (1 - eyelet[..., None]) + np.array([120, 120, 126], np.float32) * eyelet[..., None]
        )
    stitches = ((np.abs(ys - (0.32 * xs + 300)) < 0.8) & ((xs.astype(int) // 6) % 2 == 0)) * (
        (xs > 450) & (xs < 620)
    )
    fg = fg * (1 - 0.12 * stitches.astype(np.float32)[..., None])

    back = backdrop((228, 228, 225), rng, light=0.06)
    contact = _blur(coverage(_polygon([(170, 440), (655, 428), (650, 452), (180, 456)])), 6)
    cast = _blur(coverage(_ellipse(420, 455, 290, 22)), 24)
    back = shade_backdrop(back, np.clip(contact + 0.5 * cast, 0, 1), 0.45)
    return compose("sneaker", alpha, fg, back, rng)


def draw_glass() -> CutoutPhoto:
    rng = np.random.default_rng(404)
    xs, ys = _grid()
    cx, top, bottom = 400.0, 170.0, 478.0
    rim = _ellipse(cx, top, 92, 14)
    outer = coverage(
        _union(
            _polygon([(cx - 92, top), (cx + 92, top), (cx + 72, bottom), (cx - 72, bottom)]),
            rim,
            _ellipse(cx, bottom, 72, 11),
        )
    )
    # Between the walls and above the thick base the glass is thin: most of the backdrop
    # shows through (alpha 0.28); walls, rim and base are thick glass seen edge-on (0.97).
    inside = coverage(_polygon([(cx - 84, top), (cx + 84, top), (cx + 65, 438), (cx - 65, 438)]))
    thin = np.clip(inside - coverage(rim, soften=0.0), 0.0, 1.0)
    thin = _blur(thin, 0.6)
    alpha = outer * (0.97 * (1.0 - thin) + 0.28 * thin)
    # A window's reflection: a crisp bright strip down the left of the body.
    strip = coverage(_rounded((cx - 58, top + 22, cx - 49, 426), 3))
    alpha = np.maximum(alpha, 0.95 * strip)

    tint = np.array([214, 228, 234], np.float32)
    fg = tint * cylinder(xs, cx - 92, cx + 92, 0.85)[..., None]
    fg = fg * (1 - strip[..., None]) + np.array([248, 251, 255], np.float32) * strip[..., None]
    base = np.clip((ys - 440) / 10.0, 0, 1)
    fg = fg * (1 - 0.12 * base[..., None])

    back = backdrop((70, 88, 112), rng, light=0.16)
    contact = _blur(coverage(_ellipse(cx, bottom + 6, 86, 10)), 8)
    back = shade_backdrop(back, contact, 0.35)
    return compose("glass", np.asarray(alpha, np.float32), fg, back, rng)


DRAWERS: dict[str, Callable[[], CutoutPhoto]] = {
    "mug": draw_mug,
    "bottle": draw_bottle,
    "sneaker": draw_sneaker,
    "glass": draw_glass,
}


def save(photo: CutoutPhoto, directory: Path = DATA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo.photo).save(directory / f"{photo.name}.png", optimize=True)
    Image.fromarray(np.round(photo.alpha * 255).astype(np.uint8)).save(
        directory / f"{photo.name}_alpha.png", optimize=True
    )
    for layer, values in (("foreground", photo.foreground), ("backdrop", photo.backdrop)):
        Image.fromarray(values.astype(np.uint8)).save(
            directory / f"{photo.name}_{layer}.png", optimize=True
        )


def load(name: str, directory: Path = DATA_DIR) -> CutoutPhoto:
    """A committed photo with its true layers."""

    def read(suffix: str) -> np.ndarray[Any, Any]:
        with Image.open(directory / f"{name}{suffix}.png") as image:
            return np.asarray(image)

    return CutoutPhoto(
        name,
        read(""),
        read("_alpha").astype(np.float32) / 255.0,
        read("_foreground").astype(np.float32),
        read("_backdrop").astype(np.float32),
    )


if __name__ == "__main__":
    for drawn in PHOTOS:
        save(DRAWERS[drawn]())
        print(f"wrote {DATA_DIR / drawn}.png and its layers")
