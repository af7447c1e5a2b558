"""Seed 004's product analysis: what a vision model is asked, and how its answer is read.

The analysis is a fixed JSON object (``ANALYSIS_FIELDS``): category, subcategory, brand,
product_name, description, colors, materials, key_features, recommended_prompt. One set of
step inputs serves both kinds of model in the chain: an OpenAI-compatible chat model reads
``prompt``/``system_prompt``/``images`` with a JSON response format, ``local/analyze`` reads
``image`` and fills what its signals show (each model ignores the other's inputs).

A model's answer is never trusted to be well formed: ``read_analysis`` takes JSON from the
output's parsed data or its text (bare, in a code fence, or wrapped in prose), keeps only
the known fields, turns each into its type (text or a list of short texts), and leaves what
is missing or unusable empty (``None`` or ``[]``) rather than failing the photo.
"""

from __future__ import annotations

import json
import re
from typing import Any

from conveyor.providers.base import FileInput, ModelOutput

TEXT_FIELDS = (
    "category",
    "subcategory",
    "brand",
    "product_name",
    "description",
    "recommended_prompt",
)
LIST_FIELDS = ("colors", "materials", "key_features")
ANALYSIS_FIELDS = (
    "category",
    "subcategory",
    "brand",
    "product_name",
    "description",
    "colors",
    "materials",
    "key_features",
    "recommended_prompt",
)
MAX_TEXT = 2000
MAX_LIST_ITEMS = 12
MAX_LIST_TEXT = 200

ANALYSIS_SYSTEM_PROMPT = (
    "You are a product analyst for an online marketplace. You look at one product photo and "
    "describe only what is visible; you never invent a brand or a model name you cannot read "
    "or recognise with confidence."
)
ANALYSIS_PROMPT = """\
Analyse the product in this photo for an online store listing.
Answer with one JSON object and nothing else, with exactly these keys:
{
  "category": "broad marketplace category in English, e.g. electronics",
  "subcategory": "narrower category, e.g. smartphones",
  "brand": "the brand if it is legible or unmistakable, else null",
  "product_name": "the product's name or model if known, else null",
  "description": "one or two sentences describing the product as seen",
  "colors": ["main colours of the product, not of the background"],
  "materials": ["visible materials, e.g. glass, steel"],
  "key_features": ["up to 5 visible features"],
  "recommended_prompt": "an instruction for an image-editing model that puts this exact \
product, unchanged, alone on a pure white background with soft studio light"
}
Use null for text you cannot tell and [] for lists you cannot fill."""

_FENCED = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def analysis_inputs(image: FileInput) -> dict[str, Any]:
    """Step inputs for every model of the analysis chain (chat vision and local/analyze)."""
    return {
        "system_prompt": ANALYSIS_SYSTEM_PROMPT,
        "prompt": ANALYSIS_PROMPT,
        "images": [image],
        "response_format": {"type": "json_object"},
        "temperature": 0.2,
        "max_tokens": 800,
        "image": image,
    }


def empty_analysis() -> dict[str, Any]:
    return {name: [] if name in LIST_FIELDS else None for name in ANALYSIS_FIELDS}


def read_analysis(output: ModelOutput) -> dict[str, Any] | None:
    """The seed's analysis from a model's output, or ``None`` if it holds no JSON object."""
    found = output.data if isinstance(output.data, dict) else _json_object(output.text or "")
    if found is None:
        return None
    analysis = empty_analysis()
    for name in TEXT_FIELDS:
        analysis[name] = _text(found.get(name))
    for name in LIST_FIELDS:
        analysis[name] = _texts(found.get(name))
    return analysis


def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: bare, fenced, or between prose."""
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCED.finditer(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if not text or text.lower() in ("null", "none", "unknown", "n/a"):
        return None
    return text[:MAX_TEXT]


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        # Some models answer a list as one comma-separated string.
        value = value.split(",")
    if not isinstance(value, list):
        return []
    texts = [t[:MAX_LIST_TEXT] for t in (_text(v) for v in value) if t is not None]
    return list(dict.fromkeys(texts))[:MAX_LIST_ITEMS]
