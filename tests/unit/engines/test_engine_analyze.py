"""Product analysis from local signals, and the torch-free classifier under it."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from engine_samples import BAD_PRODUCT_IMAGES, PRODUCT_BLUE, PRODUCT_RED, encode, product_photo
from PIL import Image

from conveyor.providers.local import EngineInputError, EngineOptions
from conveyor.providers.local.analyze import analyze_product, dominant_colors
from conveyor.providers.local.catalogue_facts import CATEGORIES, classifier_weights_path
from conveyor.providers.local.classifier import classify_image, load_classifier
from conveyor.providers.local.torch_weights import WeightsFormatError, read_legacy_state_dict

SEED_FIELDS = {
    "category",
    "subcategory",
    "brand",
    "product_name",
    "description",
    "colors",
    "materials",
    "key_features",
    "recommended_prompt",
}
OPTIONS = EngineOptions()


def test_analysis_has_the_seed_fields_and_honest_signals() -> None:
    photo, _ = product_photo("bottle", colour=PRODUCT_BLUE, label="AQUA")
    analysis = analyze_product(
        encode(photo, "JPEG", quality=92), min_confidence=0.0, options=OPTIONS
    )
    assert set(analysis) == SEED_FIELDS | {"signals"}
    signals = analysis["signals"]
    assert signals["source"] == "local-signals"
    top = signals["classifier"]["labels"][0]
    # With no confidence floor the subcategory is exactly the classifier's top label.
    assert analysis["subcategory"] == top["label"]
    assert 0.0 < top["confidence"] <= 1.0
    assert "blue" in analysis["colors"]
    assert signals["mask"]["engine"] == "u2netp"
    assert any("AQUA" in line["text"] for line in signals["ocr"]["lines"])
    assert any("AQUA" in feature for feature in analysis["key_features"])
    # What no local signal can know stays empty.
    assert analysis["brand"] is None
    assert analysis["product_name"] is None
    assert analysis["materials"] == []
    assert "blue" in analysis["recommended_prompt"]


def test_low_confidence_label_leaves_category_empty() -> None:
    photo, _ = product_photo(colour=PRODUCT_RED)
    analysis = analyze_product(encode(photo), min_confidence=1.0, read_text=False, options=OPTIONS)
    assert analysis["category"] is None
    assert analysis["subcategory"] is None
    assert analysis["colors"][0] == "red"
    assert analysis["signals"]["ocr"]["engine"] is None


def test_colours_come_from_the_product_not_the_backdrop() -> None:
    photo, truth = product_photo(colour=PRODUCT_RED)
    rgb = np.asarray(photo)
    assert [c.name for c in dominant_colors(rgb, truth)] == ["red"]
    whole = [c.name for c in dominant_colors(rgb)]
    assert whole[0] in ("white", "beige", "grey")


@pytest.mark.parametrize("name", list(BAD_PRODUCT_IMAGES))
def test_bad_images_are_input_errors(name: str) -> None:
    with pytest.raises(EngineInputError):
        analyze_product(BAD_PRODUCT_IMAGES[name], options=OPTIONS)


def test_category_table_uses_real_imagenet_labels() -> None:
    labels = set(load_classifier(1).labels)
    named = {label for group in CATEGORIES.values() for label in group}
    assert named <= labels, sorted(named - labels)


def test_classifier_returns_ranked_imagenet_labels() -> None:
    photo, _ = product_photo()
    labels = classify_image(photo, top_k=5)
    assert len(labels) == 5
    confidences = [label.confidence for label in labels]
    assert confidences == sorted(confidences, reverse=True)
    assert 0.0 < sum(confidences) <= 1.0 + 1e-6
    assert classify_image(photo, top_k=1)[0] == labels[0]


def test_torch_free_reader_loads_the_packaged_weights() -> None:
    tensors = read_legacy_state_dict(classifier_weights_path())
    assert tensors["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert tensors["_fc.weight"].shape == (1000, 1280)
    assert sum(int(t.size) for t in tensors.values()) == 4_694_073


def test_torch_free_reader_refuses_code_and_garbage(tmp_path: pytest.TempPathFactory) -> None:
    evil = tmp_path / "evil.pth"  # type: ignore[operator]
    with evil.open("wb") as stream:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, stream)
        stream.write(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(WeightsFormatError, match="refusing"):
        read_legacy_state_dict(evil)
    garbage = tmp_path / "garbage.pth"  # type: ignore[operator]
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsFormatError):
        read_legacy_state_dict(garbage)


def test_cut_out_with_alpha_is_analysed_on_its_own_mask() -> None:
    photo, truth = product_photo(colour=PRODUCT_RED)
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray((truth * 255).astype(np.uint8)))
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    analysis = analyze_product(buffer.getvalue(), read_text=False, options=OPTIONS)
    assert analysis["colors"][0] == "red"
