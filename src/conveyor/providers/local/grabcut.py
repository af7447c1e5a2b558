"""Background removal without a model: OpenCV GrabCut, the last link of a fallback chain.

GrabCut needs a first guess of what is background. Product photos are framed with the
product in the middle and a plain backdrop around it, so the guess is: a thin frame along the
border is surely background; pixels close to a smooth backdrop fitted to that frame (a
quadratic surface per channel, which follows a studio sweep and a vignette) are probably
background, and so are pixels darker than it with its hue (the product's shadow); everything
else is probably foreground. GrabCut then fits colour models to both and cuts along edges.
It runs on a copy no larger than ``WORK_SIDE`` pixels on its longest side (its cost grows
with pixels × iterations); the mask is scaled back, softened by a pixel, and refined like
U²-Net-p's (``matting.refine_cutout`` with edge matting: enclosed holes cleared, edge alpha
and colours from the backdrop estimate). It still struggles when the product's colours
match the background: hence "last resort".
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from conveyor.providers.local import backdrop
from conveyor.providers.local.catalogue_facts import grabcut_probe
from conveyor.providers.local.engine import (
    EngineInputError,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    OutputFile,
)
from conveyor.providers.local.image_decoding import decode_image
from conveyor.providers.local.matting import refine_cutout
from conveyor.providers.local.u2netp import CutOut, rgb_and_alpha

WORK_SIDE = 640
BORDER_FRACTION = 0.02
# Distance in RGB units under which a pixel "looks like" the border colour.
BACKGROUND_DISTANCE = 40.0


probe = grabcut_probe


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise EngineUnavailable(
            "OpenCV is not installed", "pip install opencv-python-headless"
        ) from exc
    return cv2


def grabcut_cutout(
    image: bytes, *, iterations: int = 5, max_pixels: int = EngineOptions().max_image_pixels
) -> CutOut:
    """Cut the product out of a photo with GrabCut: RGBA PNG bytes."""
    cv2 = _cv2()
    decoded = decode_image(image, max_pixels=max_pixels)
    rgb, source_alpha = rgb_and_alpha(decoded.image)
    height, width = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(height, width))
    small = (
        cv2.resize(
            rgb,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        if scale < 1.0
        else rgb
    )
    mask = _initial_mask(small)
    if not (mask == cv2.GC_PR_FGD).any():
        raise EngineInputError("the photo looks like plain background: nothing to cut out")
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(small[..., ::-1])
    try:
        cv2.grabCut(
            bgr, mask, None, background_model, foreground_model, iterations, cv2.GC_INIT_WITH_MASK
        )
    except cv2.error as exc:
        raise EngineInputError(f"GrabCut could not separate a foreground: {exc}") from exc
    solid = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8) * 255
    solid = _largest_regions(solid)
    alpha = (
        cv2.resize(solid, (width, height), interpolation=cv2.INTER_LINEAR) if scale < 1.0 else solid
    )
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    refined = refine_cutout(rgb, np.asarray(alpha, np.uint8), edge_matting=True)
    rgb, alpha = refined.rgb, refined.alpha
    if source_alpha is not None:
        alpha = np.minimum(alpha, source_alpha)
    fraction = float((alpha > 127).mean())
    if fraction < 0.005:
        raise EngineInputError("GrabCut found no foreground object")
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(buffer, "PNG", compress_level=3)
    return CutOut(buffer.getvalue(), width, height, fraction, refined.holes_cleared)


def _initial_mask(rgb: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    cv2 = _cv2()
    frame = backdrop.border_frame(rgb.shape, BORDER_FRACTION)
    pixels = rgb.astype(np.float32)
    behind = backdrop.backdrop_from_border(pixels, frame)
    distance = backdrop.distance(pixels, behind)
    near = distance < min(BACKGROUND_DISTANCE, max(12.0, 4.0 * float(np.median(distance[frame]))))
    likely_backdrop = near | backdrop.in_shadow(pixels, behind)
    mask = np.where(likely_backdrop, cv2.GC_PR_BGD, cv2.GC_PR_FGD).astype(np.uint8)
    mask[frame] = cv2.GC_BGD
    return np.asarray(mask, dtype=np.uint8)


def _largest_regions(
    solid: np.ndarray[Any, np.dtype[np.uint8]],
) -> np.ndarray[Any, np.dtype[np.uint8]]:
    cv2 = _cv2()
    count, labels, stats, _ = cv2.connectedComponentsWithStats((solid > 0).astype(np.uint8))
    if count <= 2:
        return solid
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= 0.02 * areas.max())
    return np.where(np.isin(labels, keep), solid, 0).astype(np.uint8)


def run(inputs: dict[str, Any], options: EngineOptions) -> EngineResult:
    """Entry point for ``local/grabcut``."""
    cut = grabcut_cutout(
        inputs["image"],
        iterations=int(inputs.get("iterations", 5)),
        max_pixels=options.max_image_pixels,
    )
    return EngineResult(
        files=[OutputFile(cut.png, "image/png", "cutout.png")],
        data={
            "engine": "grabcut",
            "width": cut.width,
            "height": cut.height,
            "foreground_fraction": round(cut.foreground_fraction, 4),
            "holes_cleared": cut.holes_cleared,
        },
    )
