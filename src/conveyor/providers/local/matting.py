"""From a first mask to a clean cut-out: holes cleared, edges matted, edge colours decontaminated.

A background-removal engine gives a first alpha (U²-Net-p's saliency, GrabCut's labels). It
can miss a part of the product that is close to the backdrop, fill a handle's hole, and its
edge pixels still carry the photo's colours, which mix product and backdrop (a yellow fringe
around a white cap). ``refine_cutout`` fixes these with a model of the backdrop
(``backdrop``):

1. Parts the first mask missed but the backdrop model says are not backdrop (nor its
   shadow) are added (``backdrop.missed_product``).
2. The backdrop behind every pixel, ``B``, is filled in from the pixels the first mask calls
   surely backdrop (then again with the contact shadow next to the product, which that first
   estimate cannot know); the product's colour near every pixel, ``F``, from the pixels it
   calls surely product that stand out from the backdrop as much as the product's outline does
   (so a glass's see-through body does not count as the glass's colour).
3. An alpha explained by colour: a pixel ``I`` that mixes the two is ``αF + (1 − α)B``, so
   ``α`` is the projection of ``I − B`` on ``F − B`` (difference matting against a known
   backdrop). It is trusted only where ``F`` and ``B`` differ by ``MIN_CONTRAST`` and ``I``
   lies close to the line between them.
4. Regions enclosed by the product whose colour is mostly backdrop (colour alpha under
   ``HOLE_ALPHA``, thicker than a seam) take the colour alpha: a handle's hole becomes
   transparent, a glass's thin body keeps its partial alpha. Along the outline, the colour
   alpha replaces the first mask's ramp with ``edge_matting``, and otherwise only lowers it
   (backdrop the model kept, such as a shadow, goes; nothing is added).
5. Foreground colours for every partly transparent pixel: the product colour nearby,
   corrected by the part of the compositing residual that ``α`` explains (the blur-fusion
   update of Forte & Pitié, 2021, with our backdrop estimate as ``B``). Fully transparent
   pixels take the product colour nearby, so a resize downstream has no backdrop to bleed in.

All of it is a handful of full-image numpy/OpenCV passes: no matting solver, no new
dependency. Photos larger than ``WORK_SIDE`` are refined on a smaller copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from conveyor.providers.local import backdrop

FloatArray = NDArray[np.float32]
ByteArray = NDArray[np.uint8]
BoolArray = NDArray[np.bool_]

# Below this RGB distance between product and backdrop, colour cannot tell them apart.
MIN_CONTRAST = 20.0
# Colour alone sets the outline's alpha (matting) only from this distance on: closer, sensor
# noise is a large share of it.
MATTING_CONTRAST = 40.0
# A pixel is a mix of product and backdrop when its colour is off their line by less than
# this share of their distance (or three times the noise).
EXPLAINED_SHARE = 0.2
# An enclosed region whose colour is at least this much backdrop is a hole (or see-through).
HOLE_ALPHA = 0.6
# Colour alpha within this of 0 or 1 is taken as 0 or 1 (sensor noise, slight shading).
SNAP = 0.04
# The product's confident colours: at least this share of the product's typical distance
# from the backdrop (keeps a glass's see-through body out of the glass's own colour).
CONFIDENT_SHARE = 0.5
# Backdrop pixels farther than this (median RGB distance) from the smooth estimate make it a
# textured backdrop, too unknown behind the product for colour alpha.
BUSY_BACKDROP = 10.0
# Refinement works on a copy no larger than this on its longest side.
WORK_SIDE = 1280


@dataclass(frozen=True, slots=True)
class Refined:
    rgb: ByteArray
    alpha: ByteArray
    holes_cleared: int


def _cv2() -> Any:
    import cv2

    return cv2


def _disc(radius: int) -> Any:
    cv2 = _cv2()
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def refine_cutout(rgb: ByteArray, alpha: ByteArray, *, edge_matting: bool = False) -> Refined:
    """Clear enclosed backdrop, optionally matte the outline, decontaminate edge colours."""
    cv2 = _cv2()
    height, width = alpha.shape
    scale = WORK_SIDE / max(height, width)
    if scale >= 1.0:
        return _refine(rgb, alpha, edge_matting=edge_matting)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = _refine(
        np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8),
        np.asarray(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA), np.uint8),
        edge_matting=edge_matting,
    )
    full_alpha = np.asarray(
        cv2.resize(small.alpha, (width, height), interpolation=cv2.INTER_LINEAR), np.uint8
    )
    full_rgb = np.asarray(
        cv2.resize(small.rgb, (width, height), interpolation=cv2.INTER_LINEAR), np.uint8
    )
    # Opaque pixels keep the photo's own full-resolution colours.
    colours = np.where((full_alpha == 255)[..., None], rgb, full_rgb)
    return Refined(np.asarray(colours, np.uint8), full_alpha, small.holes_cleared)


def _refine(rgb8: ByteArray, alpha8: ByteArray, *, edge_matting: bool) -> Refined:
    cv2 = _cv2()
    height, width = alpha8.shape
    rgb = rgb8.astype(np.float32)
    first = alpha8.astype(np.float32) / 255.0
    solid = first > 0.5
    band = max(2, round(min(height, width) / 150))
    min_area = max(16, (height * width) // 20_000)
    if solid.any():
        missed = backdrop.missed_product(rgb, solid, min_area)
        first[missed] = 1.0
        solid |= missed
    grown = cv2.dilate(solid.astype(np.uint8), _disc(band)).astype(bool)
    sure_backdrop = (first <= 0.02) & ~grown & ~backdrop.fill_holes(grown)
    if sure_backdrop.mean() < 0.02 or not solid.any():
        # No backdrop to learn from (the product fills the frame): keep the first mask.
        return Refined(rgb8, alpha8, 0)

    behind = backdrop.estimate_backdrop(rgb, sure_backdrop)
    away = backdrop.distance(rgb, behind)
    noise = backdrop.noise_level(away, sure_backdrop)
    # The product's own colours are read a little inside the first mask's outline, where
    # its uncertain edge no longer mixes in the backdrop.
    inner = cv2.erode(solid.astype(np.uint8), _disc(2)).astype(bool)
    rim = inner & ~cv2.erode(solid.astype(np.uint8), _disc(3 * band)).astype(bool)
    typical = float(np.median(away[rim])) if rim.any() else 0.0
    confident = inner & (away >= max(3.0 * noise, CONFIDENT_SHARE * typical))
    if not confident.any():
        confident = inner
    product = backdrop.fill_from_known(rgb, confident)
    # A contact shadow darkens the backdrop steeply toward the product, more than the
    # estimate from farther out can know: where the first mask is unsure and a pixel looks
    # like the backdrop, darker but of the same hue, it is backdrop in shadow; learn it too.
    shadowed = grown & (first < 1.0) & ~inner & backdrop.in_shadow(rgb, behind)
    if shadowed.any():
        behind = backdrop.estimate_backdrop(rgb, sure_backdrop | shadowed)
    colour_alpha, contrast, unexplained = _colour_alpha(rgb, behind, product)
    # Trusted where product and backdrop differ enough and the pixel really is a mix of the
    # two (a thin stripe of another colour is not).
    usable = (contrast >= MIN_CONTRAST) & (
        unexplained <= np.maximum(3.0 * noise, EXPLAINED_SHARE * contrast)
    )
    if noise > BUSY_BACKDROP:
        # A textured backdrop (a wooden table, a room) is not known well enough behind the
        # product to judge its colours against: keep the mask, still clean the edge colours.
        usable[:] = False

    result = first.copy()
    # Thinner than a few pixels is the seam between two product colours, not a hole.
    see_through = cv2.morphologyEx(
        (usable & (colour_alpha < HOLE_ALPHA)).astype(np.uint8), cv2.MORPH_OPEN, _disc(2)
    ).astype(bool)
    holes = backdrop.enclosed_regions(see_through, solid, min_area)
    holes_cleared = int(cv2.connectedComponents(holes.astype(np.uint8))[0]) - 1
    if holes.any():
        around = cv2.dilate(holes.astype(np.uint8), _disc(band)).astype(bool) & usable
        result[around] = colour_alpha[around]
    outline = grown & ~cv2.erode(solid.astype(np.uint8), _disc(band)).astype(bool) & usable
    # The model's edge stays, less what the colours show is backdrop; with matting, where
    # product and backdrop are far enough apart for colour to be precise, colour decides.
    result[outline] = np.minimum(result[outline], colour_alpha[outline])
    if edge_matting:
        matted = outline & (contrast >= MATTING_CONTRAST)
        result[matted] = colour_alpha[matted]
    # Pixels the first mask saw as far backdrop stay transparent whatever their colour.
    result[~grown & ~holes] = 0.0
    alpha = np.clip(result, 0.0, 1.0)
    local_backdrop = backdrop.fill_from_known(rgb, alpha <= 0.01)
    colours = _foreground_colours(rgb, alpha, local_backdrop, product)
    alpha8_out = np.asarray(alpha * 255.0 + 0.5, np.uint8)
    opaque = alpha8_out == 255
    colours8 = np.where(opaque[..., None], rgb8, np.clip(colours + 0.5, 0, 255).astype(np.uint8))
    return Refined(np.asarray(colours8, np.uint8), alpha8_out, holes_cleared)


def _colour_alpha(
    rgb: FloatArray, behind: FloatArray, product: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Difference matting: how much of each pixel is product, how far apart product and
    backdrop are, and how far the pixel is from the mix of the two that alpha describes."""
    towards = product - behind
    length2 = backdrop.channel_dot(towards, towards)
    alpha = np.clip(backdrop.channel_dot(rgb - behind, towards) / np.maximum(length2, 1.0), 0, 1)
    mixed = behind + alpha[..., None] * towards
    unexplained = backdrop.distance(rgb, mixed)
    alpha = np.where(alpha < SNAP, 0.0, np.where(alpha > 1.0 - SNAP, 1.0, alpha))
    return (
        np.asarray(alpha, np.float32),
        np.asarray(np.sqrt(length2), np.float32),
        np.asarray(unexplained, np.float32),
    )


def _foreground_colours(
    rgb: FloatArray, alpha: FloatArray, behind: FloatArray, product: FloatArray
) -> FloatArray:
    """The product's own colour under every partly transparent pixel (see the docstring)."""
    a = alpha[..., None]
    fused = product + a * (rgb - a * product - (1.0 - a) * behind)
    return np.asarray(np.where(a > 0.0, fused, product), np.float32)
