"""Reading text from images: rapidocr for photos, tesseract for documents.

rapidocr-onnxruntime ships PP-OCRv4 detection and recognition models in its wheel: it finds
text anywhere in a photo, at any angle, but reads Latin script and Chinese only. tesseract
(Debian, with one package per language) reads clean document text in every script it has a
language pack for, and misses small labels in photos. Both answer the same shape: the full
text, and lines with a confidence in 0..1 and a box of four corner points in the pixel
coordinates of the (EXIF-rotated) image.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from conveyor.providers.local.catalogue_facts import (
    OCR_ENGINES,
    ocr_probe,
    tesseract_languages,
)
from conveyor.providers.local.engine import (
    EngineInputError,
    EngineOptions,
    EngineResult,
    EngineUnavailable,
    run_program,
)
from conveyor.providers.local.image_decoding import decode_image

ENGINES = OCR_ENGINES
# ISO 639-1 → tesseract's ISO 639-3 names, for the languages people ask for most.
_TESSERACT_CODES = {
    "en": "eng", "ru": "rus", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por",
    "uk": "ukr", "pl": "pol", "nl": "nld", "tr": "tur", "zh": "chi_sim", "ja": "jpn", "ko": "kor",
    "ar": "ara", "kk": "kaz", "be": "bel", "cs": "ces", "sv": "swe", "fi": "fin",
}  # fmt: skip
# Photos are read at this size at most: the detector works at ~736 px anyway.
MAX_OCR_SIDE = 2000


@dataclass(frozen=True, slots=True)
class TextLine:
    text: str
    confidence: float
    box: list[list[float]]  # four [x, y] corners, clockwise from top-left


@dataclass(frozen=True, slots=True)
class OcrResult:
    text: str
    lines: list[TextLine]
    engine: str
    languages: list[str]


def load_rapidocr(threads: int) -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise EngineUnavailable(
            "rapidocr-onnxruntime is not installed", "pip install rapidocr-onnxruntime==1.4.4"
        ) from exc
    # Detection on the longer side capped at 960 px: the package default scales the *shorter*
    # side up to 736 px, which makes a small picture several times slower to read.
    settings: dict[str, Any] = {
        "print_verbose": False,
        "det_limit_type": "max",
        "det_limit_side_len": 960,
    }
    if threads > 0:
        settings.update(intra_op_num_threads=threads, inter_op_num_threads=1)
    try:
        return RapidOCR(**settings)
    except Exception as exc:
        raise EngineUnavailable(
            f"rapidocr's models cannot be loaded ({exc})",
            "pip install --force-reinstall rapidocr-onnxruntime==1.4.4",
        ) from exc


@functools.cache
def _rapidocr(threads: int) -> Any:
    return load_rapidocr(threads)


def read_photo_text(
    image: Image.Image, *, min_confidence: float = 0.5, threads: int = 1
) -> list[TextLine]:
    """Lines of text rapidocr finds in a picture, top to bottom."""
    rgb = image.convert("RGB")
    scale = min(1.0, MAX_OCR_SIDE / max(rgb.size))
    if scale < 1.0:
        rgb = rgb.resize(
            (round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.BILINEAR
        )
    bgr = np.ascontiguousarray(np.asarray(rgb)[..., ::-1])
    found, _ = _rapidocr(threads)(bgr)
    lines: list[TextLine] = []
    for box, text, score in found or []:
        if float(score) < min_confidence or not str(text).strip():
            continue
        corners = [[round(float(x) / scale, 1), round(float(y) / scale, 1)] for x, y in box]
        lines.append(TextLine(str(text).strip(), round(float(score), 4), corners))
    lines.sort(key=lambda line: (line.box[0][1], line.box[0][0]))
    return lines


def tesseract_codes(languages: list[str]) -> list[str]:
    """Tesseract's names for the requested languages, or ``EngineInputError`` naming the missing."""
    installed = tesseract_languages()
    codes: list[str] = []
    for language in languages:
        key = language.strip().lower().replace("-", "_")
        # Tesseract's own names (eng, chi_sim) as they are; ISO 639-1 and BCP-47 mapped.
        code = key if key in installed else _TESSERACT_CODES.get(key.split("_")[0], key)
        if code not in installed:
            package = code.replace("_", "-")
            raise EngineInputError(
                f"no tesseract language pack for '{language}'; installed: "
                f"{', '.join(sorted(installed))} "
                f"(add one with apt-get install tesseract-ocr-{package})"
            )
        if code not in codes:
            codes.append(code)
    return codes


def read_document_text(
    image: Image.Image, languages: list[str], *, min_confidence: float = 0.5, timeout: float = 60.0
) -> list[TextLine]:
    """Lines of text tesseract reads in a picture, in reading order."""
    codes = tesseract_codes(languages)
    png = io.BytesIO()
    image.convert("RGB").save(png, "PNG", compress_level=1)
    tsv = run_program(
        ["tesseract", "stdin", "stdout", "-l", "+".join(codes), "tsv"],
        stdin=png.getvalue(),
        timeout=timeout,
        what="tesseract",
    )
    return _lines_from_tsv(tsv.decode("utf-8", "replace"), min_confidence)


def _lines_from_tsv(tsv: str, min_confidence: float) -> list[TextLine]:
    # Level-5 rows are words; a line is the words sharing (block, paragraph, line).
    grouped: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        if row.get("level") == "5" and (row.get("text") or "").strip():
            grouped.setdefault((row["block_num"], row["par_num"], row["line_num"]), []).append(row)
    lines: list[TextLine] = []
    for words in grouped.values():
        confidence = sum(max(0.0, float(w["conf"])) for w in words) / len(words) / 100.0
        if confidence < min_confidence:
            continue
        left = min(int(w["left"]) for w in words)
        top = min(int(w["top"]) for w in words)
        right = max(int(w["left"]) + int(w["width"]) for w in words)
        bottom = max(int(w["top"]) + int(w["height"]) for w in words)
        box = [
            [float(left), float(top)],
            [float(right), float(top)],
            [float(right), float(bottom)],
            [float(left), float(bottom)],
        ]
        lines.append(
            TextLine(" ".join(w["text"].strip() for w in words), round(confidence, 4), box)
        )
    return lines


def parse_languages(value: Any) -> list[str]:
    """``"eng+rus"``, ``"en,ru"`` or ``["en", "ru"]`` as a list of codes."""
    if isinstance(value, str):
        items = value.replace(",", "+").split("+")
    elif isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        raise EngineInputError("languages must be a string like 'eng+rus' or a list of codes")
    codes = [item.strip() for item in items if item.strip()]
    if not codes:
        raise EngineInputError("languages is empty")
    return codes


def read_text(
    image: bytes,
    *,
    engine: str = "rapidocr",
    languages: Any = "eng",
    min_confidence: float = 0.5,
    options: EngineOptions = EngineOptions(),
) -> OcrResult:
    """Text in an image with either engine; see the module docstring."""
    if engine not in ENGINES:
        raise EngineInputError(f"unknown OCR engine '{engine}'; use one of {', '.join(ENGINES)}")
    if not 0.0 <= min_confidence <= 1.0:
        raise EngineInputError("min_confidence must be between 0 and 1")
    codes = parse_languages(languages)
    picture = decode_image(image, max_pixels=options.max_image_pixels).image
    if picture.mode == "RGBA":
        flat = Image.new("RGB", picture.size, (255, 255, 255))
        flat.paste(picture, mask=picture.getchannel("A"))
        picture = flat
    if engine == "tesseract":
        lines = read_document_text(
            picture, codes, min_confidence=min_confidence, timeout=options.program_timeout
        )
    else:
        lines = read_photo_text(
            picture, min_confidence=min_confidence, threads=options.onnx_threads
        )
    return OcrResult("\n".join(line.text for line in lines), lines, engine, codes)


probe = ocr_probe


def run(inputs: dict[str, Any], options: EngineOptions) -> EngineResult:
    """Entry point for ``local/ocr``."""
    result = read_text(
        inputs["image"],
        engine=inputs.get("engine", "rapidocr"),
        languages=inputs.get("languages", "eng"),
        min_confidence=float(inputs.get("min_confidence", 0.5)),
        options=options,
    )
    warnings: list[str] = []
    if result.engine == "rapidocr" and any(
        c.lower()[:2] not in ("en", "zh", "ch") for c in result.languages
    ):
        warnings.append(
            "rapidocr reads Latin script and Chinese only; use engine 'tesseract' for other scripts"
        )
    return EngineResult(
        text=result.text,
        data={
            "engine": result.engine,
            "languages": result.languages,
            "text": result.text,
            "lines": [
                {"text": ln.text, "confidence": ln.confidence, "box": ln.box} for ln in result.lines
            ],
            "warnings": warnings,
        },
    )
