"""What is behind the product: a per-pixel estimate of the backdrop, and the holes that show it.

A product photo's backdrop is smooth (a studio sweep, a wall, a table), lit unevenly and
darkened by the product's own shadow. Where the first mask says "surely backdrop" we know its
colour; behind the product we do not, so we fill it in from around: ``fill_from_known`` is a
push-pull interpolation (Gortler et al.'s Lumigraph hole filling): the known pixels are
averaged down a pyramid of halved resolutions until every cell has some, then pulled back up,
each level keeping its own average where it had enough known pixels and taking the coarser
level's elsewhere. It costs a few full-image passes, keeps gradients and shadows near the
product, and needs no model of the backdrop's shape. The same fill, fed the product's
confident pixels, gives each pixel the colour of the product nearby (``matting`` uses both).

With the backdrop known, "a region enclosed by the product that shows the backdrop" (a mug's
handle hole, the thin body of a glass) is a measurable thing: pixels inside the product's
outline, cut off from the outside, whose colour is mostly explained by the backdrop behind
them. ``enclosed_regions`` finds them; ``matting`` decides how transparent they are.

Two more judgements need no first mask at all: ``backdrop_from_border`` fits a smooth
surface (a quadratic per channel: a sweep, a light falloff, a vignette) to a frame along the
photo's edges, so "differs from the backdrop" can be asked anywhere (GrabCut's seed,
``missed_product``); and ``in_shadow`` tells a shadow (darker, same hue) from a product.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
BoolArray = NDArray[np.bool_]

# A cell whose share of known pixels reaches 1/KEEP_SHARE keeps its own average when pulled up.
KEEP_SHARE = 4.0
# Grain is averaged out of the known backdrop over this Gaussian sigma, in pixels.
SMOOTH_SIGMA = 2.0
# How far (in pixels) the nearest known backdrop pixel still outweighs the interpolation.
NEAREST_REACH = 6.0
# A shadow keeps the backdrop's hue: its RGB vector is within this angle of the backdrop's.
SHADOW_ANGLE = 4.0
# A first mask's missed parts differ from the border's backdrop model by at least this much.
MISSED_DISTANCE = 18.0
# The border fits a plain backdrop within this median RGB distance (busier: no guessing).
PLAIN_BORDER = 8.0
# The frame the border fit reads, as a share of the shorter side.
BORDER_SHARE = 0.02
# The border fit uses at most this many border pixels.
BORDER_SAMPLE = 4_000
# The noise of the backdrop distance is estimated from at most this many sure-backdrop pixels.
NOISE_SAMPLE = 20_000


def _cv2() -> Any:
    import cv2

    return cv2


def fill_from_known(values: FloatArray, known: BoolArray) -> FloatArray:
    """Every pixel's value interpolated from the pixels where ``known`` is set (push-pull).

    ``values`` is H×W×C. Known pixels keep their value; the rest take a smooth blend of the
    nearest known ones.
    """
    cv2 = _cv2()
    if not known.any():
        return np.asarray(values, np.float32)
    height, width = known.shape
    weighted = [np.where(known[..., None], values, 0.0).astype(np.float32)]
    weights = [known.astype(np.float32)]
    while max(weights[-1].shape) > 1:
        size = (max(1, (weights[-1].shape[1] + 1) // 2), max(1, (weights[-1].shape[0] + 1) // 2))
        down_w = cv2.resize(weights[-1], size, interpolation=cv2.INTER_AREA)
        down_v = cv2.resize(weighted[-1], size, interpolation=cv2.INTER_AREA)
        weights.append(np.asarray(down_w, np.float32).reshape(size[1], size[0]))
        weighted.append(np.asarray(down_v, np.float32).reshape(size[1], size[0], -1))
    filled = weighted[-1] / np.maximum(weights[-1], 1e-12)[..., None]
    # Pull up to the second-finest level; the finest needs no blend (weights are 0 or 1).
    for level_v, level_w in zip(reversed(weighted[1:-1]), reversed(weights[1:-1]), strict=True):
        up = cv2.resize(
            filled, (level_w.shape[1], level_w.shape[0]), interpolation=cv2.INTER_LINEAR
        )
        up = np.asarray(up, np.float32).reshape(level_w.shape[0], level_w.shape[1], -1)
        own = level_v / np.maximum(level_w, 1e-12)[..., None]
        keep = np.clip(level_w * KEEP_SHARE, 0.0, 1.0)[..., None]
        filled = own * keep + up * (1.0 - keep)
    up = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR)
    up = np.asarray(up, np.float32).reshape(height, width, -1)
    return np.asarray(np.where(known[..., None], values, up), np.float32)


def estimate_backdrop(rgb: FloatArray, sure_backdrop: BoolArray) -> FloatArray:
    """The backdrop's colour at every pixel, from the pixels known to show it, without grain.

    The known pixels are first averaged with their known neighbours (a normalised blur), so
    the estimate carries the backdrop's light and shadows but not its sensor noise, and the
    distance of a backdrop pixel from it measures that noise.
    """
    cv2 = _cv2()
    known = sure_backdrop.astype(np.float32)
    spread = cv2.GaussianBlur(known, (0, 0), SMOOTH_SIGMA)
    smooth = cv2.GaussianBlur(rgb * known[..., None], (0, 0), SMOOTH_SIGMA)
    smooth = np.asarray(smooth, np.float32) / np.maximum(spread, 1e-6)[..., None]
    smooth = np.where(sure_backdrop[..., None], smooth, 0.0).astype(np.float32)
    interpolated = fill_from_known(smooth, sure_backdrop)
    # Right next to the known pixels the nearest one is the better guess: a contact shadow
    # darkens steeply toward the product, and an average over a wider area lightens it.
    nearest, gap = _nearest_known(smooth, sure_backdrop, cv2)
    weight = np.exp(-gap / NEAREST_REACH)[..., None]
    return np.asarray(nearest * weight + interpolated * (1.0 - weight), np.float32)


def _nearest_known(values: FloatArray, known: BoolArray, cv2: Any) -> tuple[FloatArray, FloatArray]:
    """Each pixel's value at its nearest known pixel, and the distance to it in pixels."""
    unknown = (~known).astype(np.uint8)
    gap, labels = cv2.distanceTransformWithLabels(
        unknown, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    known_index = np.flatnonzero(known.ravel())
    lookup = np.zeros(int(labels.max()) + 1, np.int64)
    lookup[labels.ravel()[known_index]] = known_index
    flat = values.reshape(-1, values.shape[2])
    nearest = flat[lookup[labels.ravel()]].reshape(values.shape)
    return np.asarray(nearest, np.float32), np.asarray(gap, np.float32)


def border_frame(shape: tuple[int, ...], share: float = BORDER_SHARE) -> BoolArray:
    """A frame along the image's edges, ``share`` of the shorter side wide."""
    height, width = shape[:2]
    edge = max(1, round(min(height, width) * share))
    frame = np.zeros((height, width), bool)
    frame[:edge, :] = frame[-edge:, :] = True
    frame[:, :edge] = frame[:, -edge:] = True
    return frame


def backdrop_from_border(rgb: FloatArray, frame: BoolArray) -> FloatArray:
    """A smooth backdrop fitted to the photo's border: per channel, a quadratic surface in x
    and y (a studio sweep, a light falloff, a vignette), least squares, refitted once
    without the border pixels that do not fit (where the product touches the edge)."""
    height, width = frame.shape
    ys, xs = np.nonzero(frame)
    step = max(1, ys.size // BORDER_SAMPLE)
    ys, xs = ys[::step], xs[::step]
    samples = rgb[ys, xs].astype(np.float64)
    design = _quadratic_terms(xs / width, ys / height)
    keep = np.ones(ys.size, bool)
    for _ in range(2):
        coefficients, *_ = np.linalg.lstsq(design[keep], samples[keep], rcond=None)
        residual = np.sqrt(((design @ coefficients - samples) ** 2).sum(axis=1))
        keep = residual <= max(3.0 * float(np.median(residual)), 6.0)
    # A quadratic is smooth: evaluate it on a coarse grid (a row of u against a column of v)
    # and let a bilinear resize fill in the pixels.
    cv2 = _cv2()
    grid = (max(2, width // 8), max(2, height // 8))
    # At the pixel positions a resize puts the coarse samples' centres on.
    u = (((np.arange(grid[0]) + 0.5) * width / grid[0] - 0.5) / width).astype(np.float32)
    v = (((np.arange(grid[1]) + 0.5) * height / grid[1] - 0.5) / height).astype(np.float32)
    u, v = u[None, :, None], v[:, None, None]
    c = coefficients.astype(np.float32)
    coarse = c[0] + c[1] * u + c[2] * v + c[3] * u * u + c[4] * u * v + c[5] * v * v
    full = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(full, np.float32).reshape(height, width, -1)


def missed_product(rgb: FloatArray, solid: BoolArray, min_area: int) -> BoolArray:
    """Parts of the product a first mask left out: regions touching it that differ from the
    border's backdrop model by more than ``MISSED_DISTANCE`` and are not its shadow.

    Saliency fades where the product is close to the backdrop (a white sneaker on light
    grey); the backdrop model does not. It is only trusted on a plain backdrop (the border
    fits the model within ``PLAIN_BORDER``), and what it adds may not outgrow the first mask.
    """
    cv2 = _cv2()
    frame = border_frame(solid.shape) & ~solid
    nothing = np.zeros_like(solid)
    if frame.sum() < 100:
        return nothing
    behind = backdrop_from_border(rgb, frame)
    away = distance(rgb, behind)
    border_noise = float(np.median(away[frame]))
    if border_noise > PLAIN_BORDER:
        return nothing
    differs = (away > max(MISSED_DISTANCE, 4.0 * border_noise)) & ~in_shadow(rgb, behind)
    differs &= ~solid
    differs = cv2.morphologyEx(differs.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(differs, 8)
    if count <= 1:
        return nothing
    touching = cv2.dilate(solid.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    touched = set(np.unique(labels[touching & (labels > 0)]).tolist())
    sizes = stats[:, cv2.CC_STAT_AREA]
    keep = [i for i in touched if sizes[i] >= min_area]
    added = np.isin(labels, keep)
    if added.sum() > solid.sum():
        return nothing
    return np.asarray(added, bool)


def _quadratic_terms(u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)


def in_shadow(rgb: FloatArray, behind: FloatArray) -> BoolArray:
    """Pixels darker than the backdrop behind them with the same hue (their RGB vectors point
    the same way, within about ``SHADOW_ANGLE`` degrees)."""
    dot = channel_dot(rgb, behind)
    norm_rgb = np.sqrt(channel_dot(rgb, rgb))
    norm_behind = np.sqrt(channel_dot(behind, behind))
    cosine = dot / np.maximum(norm_rgb * norm_behind, 1e-6)
    same_hue = cosine >= np.cos(np.radians(SHADOW_ANGLE))
    return np.asarray(same_hue & (norm_rgb < norm_behind), bool)


def distance(rgb: FloatArray, backdrop: FloatArray) -> FloatArray:
    """Euclidean RGB distance of each pixel from the backdrop behind it."""
    difference = rgb - backdrop
    return np.asarray(np.sqrt(channel_dot(difference, difference)), np.float32)


def channel_dot(a: FloatArray, b: FloatArray) -> FloatArray:
    """Per-pixel dot product of two H×W×3 images (unrolled: numpy's reduction over an axis
    of three is several times slower)."""
    return np.asarray(
        a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2], np.float32
    )


def noise_level(distances: FloatArray, sure_backdrop: BoolArray) -> float:
    """A robust spread of the backdrop distance where the backdrop is known (grain, JPEG)."""
    samples = distances[sure_backdrop]
    if samples.size == 0:
        return 0.0
    if samples.size > NOISE_SAMPLE:
        samples = samples[:: samples.size // NOISE_SAMPLE]
    return float(np.median(samples))


def fill_holes(solid: BoolArray) -> BoolArray:
    """``solid`` plus every region it encloses (not connected to the image border)."""
    cv2 = _cv2()
    outside = _outside(solid, cv2)
    return np.asarray(~outside, bool)


def _outside(solid: BoolArray, cv2: Any) -> BoolArray:
    # Pad so that the border is one connected background region, then flood it.
    padded = np.pad(~solid, 1, constant_values=True).astype(np.uint8)
    _, labels = cv2.connectedComponents(padded, connectivity=4)
    return np.asarray(labels[1:-1, 1:-1] == labels[0, 0], bool)


def enclosed_regions(candidates: BoolArray, solid: BoolArray, min_area: int) -> BoolArray:
    """Connected regions of ``candidates`` that the product (``solid``) encloses.

    A region counts when it lies inside the product's filled outline, never touches the
    outside (the backdrop connected to the image border) and has at least ``min_area``
    pixels; smaller specks are more likely texture than a hole.
    """
    cv2 = _cv2()
    outside = _outside(solid, cv2)
    inner = candidates & ~outside
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inner.astype(np.uint8), 8)
    if count <= 1:
        return np.zeros_like(candidates)
    touching = cv2.dilate(outside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    touched = np.unique(labels[touching & inner])
    sizes = stats[:, cv2.CC_STAT_AREA]
    keep = [i for i in range(1, count) if sizes[i] >= min_area and i not in set(touched)]
    return np.asarray(np.isin(labels, keep), bool)
