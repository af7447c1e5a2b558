"""How good a cut-out is, measured against a drawn photo's true layers (``cutout_photos``).

* ``iou`` — intersection over union of the masks ``alpha > 0.5``; ``soft_iou`` the same over
  alpha values (Σ min / Σ max), which also counts partial alpha (the glass).
* ``enclosed_backdrop`` — pixels of the backdrop enclosed by the product (the mug's handle
  hole), 2 px away from its edges; ``leaked`` is the share of them the cut-out keeps opaque.
* ``edge_band`` — pixels within ``BAND`` px of the true contour, plus every partially
  transparent pixel of the truth. ``contamination`` is, over that band, the share of backdrop
  colour mixed into the cut-out's colour, weighted by the cut-out's alpha (how visible each
  pixel is once placed on a new background): for a pixel with cut-out colour C, true product
  colour F and true backdrop B, ``t = clip((C − F)·(B − F) / |B − F|², 0, 1)``, i.e. where C
  sits on the line from F (0) to B (1). Pixels whose F and B are closer than ``MIN_CONTRAST``
  RGB units say nothing about contamination and are left out.
* ``alpha_error`` — mean |cut-out alpha − true alpha| over the edge band.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from cutout_photos import CutoutPhoto
from PIL import Image

BAND = 3
MIN_CONTRAST = 30.0

Array = np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class Quality:
    iou: float
    soft_iou: float
    leaked: float
    contamination: float
    alpha_error: float

    def __str__(self) -> str:
        return (
            f"IoU {self.iou:.4f} soft {self.soft_iou:.4f} hole leak {self.leaked:.3f} "
            f"contamination {self.contamination:.3f} edge alpha error {self.alpha_error:.3f}"
        )


def cutout_layers(png: bytes) -> tuple[Array, Array]:
    """The cut-out's RGB (float) and alpha (0..1)."""
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGBA"
    rgba = np.asarray(image).astype(np.float32)
    return rgba[..., :3], rgba[..., 3] / 255.0


def iou(alpha: Array, truth: Array) -> float:
    a, b = alpha > 0.5, truth > 0.5
    return float((a & b).sum() / max(1, (a | b).sum()))


def soft_iou(alpha: Array, truth: Array) -> float:
    return float(np.minimum(alpha, truth).sum() / max(1e-6, np.maximum(alpha, truth).sum()))


def enclosed_backdrop(truth: Array) -> Array:
    """Backdrop pixels that the product surrounds, shrunk 2 px from their edges."""
    backdrop = (truth < 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(backdrop, connectivity=4)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    enclosed = np.isin(labels, [i for i in range(1, count) if i not in border])
    return cv2.erode(enclosed.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)


def edge_band(truth: Array) -> Array:
    solid = (truth > 0.5).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * BAND + 1, 2 * BAND + 1))
    near_contour = cv2.dilate(solid, kernel) != cv2.erode(solid, kernel)
    partial = (truth > 0.02) & (truth < 0.98)
    return np.asarray(near_contour | partial)


def contamination(colour: Array, alpha: Array, photo: CutoutPhoto) -> float:
    band = edge_band(photo.alpha)
    towards_backdrop = photo.backdrop - photo.foreground
    length2 = (towards_backdrop**2).sum(axis=2)
    usable = band & (length2 >= MIN_CONTRAST**2) & (alpha > 0.0)
    share = ((colour - photo.foreground) * towards_backdrop).sum(axis=2) / np.maximum(length2, 1)
    share = np.clip(share, 0.0, 1.0)
    weights = alpha[usable]
    return float((share[usable] * weights).sum() / max(1e-6, weights.sum()))


def measure(png: bytes, photo: CutoutPhoto) -> Quality:
    colour, alpha = cutout_layers(png)
    hole = enclosed_backdrop(photo.alpha)
    band = edge_band(photo.alpha)
    return Quality(
        iou=iou(alpha, photo.alpha),
        soft_iou=soft_iou(alpha, photo.alpha),
        leaked=float((alpha[hole] > 0.5).mean()) if hole.any() else 0.0,
        contamination=contamination(colour, alpha, photo),
        alpha_error=float(np.abs(alpha[band] - photo.alpha[band]).mean()),
    )
