"""An honest product analysis from signals measured on this machine, in seed 004's JSON.

No vision-LLM runs offline here, so this analysis reports only what three real signals
show and leaves the rest empty:

* the **mask** of the product from U²-Net-p (when it finds one), which limits the other two
  signals to the product and not the backdrop;
* the **ImageNet label** from EfficientNet-Lite0 on the product's crop; a confident label
  gives ``subcategory`` (the label itself) and, through a fixed table, ``category``;
* the **dominant colours** of the masked pixels (k-means in CIELAB, each centre named by the
  nearest colour of a small fixed palette), and the **text** rapidocr reads on the product.

``brand``, ``product_name`` and ``materials`` are never guessed: they stay null or empty.
``description`` and ``recommended_prompt`` are sentences built from the signals and say
nothing the signals do not. ``signals`` carries the raw measurements with
``"source": "local-signals"`` so no reader mistakes this for a model's judgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from conveyor.providers.base import Availability
from conveyor.providers.local import classifier, u2netp
from conveyor.providers.local.catalogue_facts import CATEGORIES, classifier_probe
from conveyor.providers.local.engine import (
    EngineInputError,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
)
from conveyor.providers.local.image_decoding import decode_image

# Small fixed palette: names a shopper would use, in sRGB.
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25), "white": (245, 245, 245), "grey": (128, 128, 128),
    "red": (200, 30, 35), "orange": (240, 130, 30), "yellow": (240, 210, 50),
    "green": (45, 150, 60), "teal": (0, 128, 128), "blue": (35, 85, 205),
    "light blue": (135, 190, 235), "navy": (25, 35, 95), "purple": (125, 55, 165),
    "pink": (240, 135, 185), "brown": (120, 72, 35), "beige": (225, 205, 165),
}  # fmt: skip
CATEGORY_OF = {label: category for category, labels in CATEGORIES.items() for label in labels}
MIN_COLOR_SHARE = 0.08
MAX_COLORS = 4
# Colour clustering on a thumbnail: more pixels change the shares by a fraction of a percent.
COLOR_SIDE = 160
MAX_TEXT_LINES = 8


@dataclass(frozen=True, slots=True)
class NamedColor:
    name: str
    hex: str
    share: float


def _lab(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    import cv2

    flat = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return np.asarray(cv2.cvtColor(flat, cv2.COLOR_RGB2LAB), dtype=np.float32).reshape(-1, 3)


_PALETTE_NAMES = tuple(PALETTE)


def dominant_colors(
    rgb: NDArray[np.uint8], mask: NDArray[np.bool_] | None = None, *, k: int = 5
) -> list[NamedColor]:
    """The main colours of the masked pixels, named from ``PALETTE``, largest share first."""
    import cv2

    pixels = rgb.reshape(-1, 3) if mask is None else rgb[mask]
    if len(pixels) < k:
        return []
    samples = _lab(pixels)
    cv2.setRNGSeed(0)  # the same picture always gives the same answer
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(samples, k, np.empty(0), criteria, 2, cv2.KMEANS_PP_CENTERS)
    palette_lab = _lab(np.array(list(PALETTE.values()), dtype=np.uint8))
    counts = np.bincount(labels.ravel(), minlength=k).astype(np.float64)
    shares: dict[str, float] = {}
    representative: dict[str, NDArray[np.uint8]] = {}
    for index, centre in enumerate(centres):
        name = _PALETTE_NAMES[int(np.argmin(np.linalg.norm(palette_lab - centre, axis=1)))]
        share = counts[index] / counts.sum()
        if share > shares.get(name, 0.0):
            representative[name] = np.median(pixels[labels.ravel() == index], axis=0).astype(
                np.uint8
            )
        shares[name] = shares.get(name, 0.0) + share
    ranked = sorted(shares.items(), key=lambda item: item[1], reverse=True)
    return [
        NamedColor(name, "#{:02x}{:02x}{:02x}".format(*representative[name]), round(share, 3))
        for name, share in ranked
        if share >= MIN_COLOR_SHARE
    ][:MAX_COLORS]


def analyze_product(
    image: bytes,
    *,
    read_text: bool = True,
    min_confidence: float = 0.3,
    top_k: int = 5,
    options: EngineOptions = EngineOptions(),
) -> dict[str, Any]:
    """Seed 004's analysis JSON filled from local signals; see the module docstring."""
    decoded = decode_image(image, max_pixels=options.max_image_pixels)
    rgb, source_alpha = u2netp.rgb_and_alpha(decoded.image)
    notes = list(decoded.notes)
    mask_info: dict[str, Any] = {"engine": None, "foreground_fraction": None}
    mask: NDArray[np.bool_] | None = None
    try:
        alpha = u2netp.alpha_from_saliency(u2netp.saliency(rgb, threads=options.onnx_threads))
        if source_alpha is not None:
            alpha = np.minimum(alpha, source_alpha)
        if (alpha > 127).any():
            mask = alpha > 127
            mask_info = {"engine": "u2netp", "foreground_fraction": round(float(mask.mean()), 4)}
    except EngineUnavailable as exc:
        notes.append(f"no product mask: {exc.message}")
    except EngineInputError:
        notes.append("no product mask: nothing stands out from the background")
    if mask is None and source_alpha is not None and (source_alpha > 127).any():
        mask = source_alpha > 127
        mask_info = {"engine": "source alpha", "foreground_fraction": round(float(mask.mean()), 4)}

    product = _product_crop(rgb, mask)
    labels = classifier.classify_image(product, top_k=top_k, threads=options.onnx_threads)
    colors = _colors(rgb, mask)
    lines = _text_on_product(decoded.image, mask, options) if read_text else []

    top = labels[0]
    confident = top.confidence >= min_confidence
    subcategory = top.label if confident else None
    category = CATEGORY_OF.get(top.label) if confident else None
    color_names = [c.name for c in colors]
    texts = [line["text"] for line in lines]
    return {
        "category": category,
        "subcategory": subcategory,
        "brand": None,
        "product_name": None,
        "description": _describe(subcategory, top.confidence, color_names, texts),
        "colors": color_names,
        "materials": [],
        "key_features": [f"text on the product: {t}" for t in texts],
        "recommended_prompt": _prompt(subcategory, color_names),
        "signals": {
            "source": "local-signals",
            "classifier": {
                "model": "efficientnet-lite0 (ImageNet-1k)",
                "labels": [
                    {"label": lb.label, "confidence": round(lb.confidence, 4)} for lb in labels
                ],
                "min_confidence": min_confidence,
            },
            "mask": mask_info,
            "colors": [{"name": c.name, "hex": c.hex, "share": c.share} for c in colors],
            "ocr": {"engine": "rapidocr" if read_text else None, "lines": lines},
            "notes": notes,
        },
    }


def _product_crop(rgb: NDArray[np.uint8], mask: NDArray[np.bool_] | None) -> Image.Image:
    # The classifier sees the product on white, framed with 10% room, not the whole scene.
    if mask is None:
        return Image.fromarray(rgb)
    ys, xs = np.nonzero(mask)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad_y, pad_x = (bottom - top) // 10, (right - left) // 10
    top, left = max(0, top - pad_y), max(0, left - pad_x)
    bottom, right = min(rgb.shape[0], bottom + pad_y), min(rgb.shape[1], right + pad_x)
    crop = rgb[top:bottom, left:right].copy()
    crop[~mask[top:bottom, left:right]] = 255
    return Image.fromarray(crop)


def _colors(rgb: NDArray[np.uint8], mask: NDArray[np.bool_] | None) -> list[NamedColor]:
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, COLOR_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small_mask = None
    if mask is not None:
        small_mask = (
            cv2.resize(mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) > 200
        )
        if not small_mask.any():
            small_mask = None
    return dominant_colors(np.asarray(small, dtype=np.uint8), small_mask)


def _text_on_product(
    picture: Image.Image, mask: NDArray[np.bool_] | None, options: EngineOptions
) -> list[dict[str, Any]]:
    from conveyor.providers.local import ocr

    try:
        lines = ocr.read_photo_text(picture, min_confidence=0.6, threads=options.onnx_threads)
    except EngineUnavailable:
        return []
    kept: list[dict[str, Any]] = []
    for line in lines:
        xs = [p[0] for p in line.box]
        ys = [p[1] for p in line.box]
        cx = min(max(int(sum(xs) / 4), 0), picture.width - 1)
        cy = min(max(int(sum(ys) / 4), 0), picture.height - 1)
        # Text printed on the backdrop (a price tag, a watermark) is not the product's.
        if mask is not None and not mask[cy, cx]:
            continue
        kept.append({"text": line.text, "confidence": line.confidence, "box": line.box})
    return kept[:MAX_TEXT_LINES]


def _describe(
    subcategory: str | None, confidence: float, colors: list[str], texts: list[str]
) -> str:
    parts = []
    if subcategory:
        parts.append(f"Looks like a {subcategory} (image classifier, confidence {confidence:.2f}).")
    if colors:
        parts.append(f"Main colours: {', '.join(colors)}.")
    if texts:
        parts.append("Text on the product: " + ", ".join(f"“{t}”" for t in texts) + ".")
    return " ".join(parts)


def _prompt(subcategory: str | None, colors: list[str]) -> str:
    colour = f"{colors[0]} " if colors else ""
    subject = f"a {colour}{subcategory}" if subcategory else f"the {colour}product"
    return (
        f"Professional product photo of {subject}, centred on a clean white background, "
        "soft even studio lighting, sharp focus, high detail"
    )


def probe() -> Availability:
    # The classifier is the one signal the analysis cannot do without.
    return classifier_probe()


def run(inputs: dict[str, Any], options: EngineOptions) -> EngineResult:
    """Entry point for ``local/analyze``."""
    analysis = analyze_product(
        inputs["image"],
        read_text=bool(inputs.get("read_text", True)),
        min_confidence=float(inputs.get("min_confidence", 0.3)),
        top_k=int(inputs.get("top_k", 5)),
        options=options,
    )
    return EngineResult(data=analysis, text=analysis["description"])
