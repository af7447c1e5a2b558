"""``local/enhance``: levels measured on the product alone, hue and alpha kept, sharper edges."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from conveyor.providers.local.engine import EngineOptions
from conveyor.providers.local.enhance import MAX_GAIN, enhance_image, measure_levels, run

LIMIT = EngineOptions().max_image_pixels


def encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(data)))


def murky_cutout() -> Image.Image:
    """A dull brown product (luminance ~75–126, a ramp) cut out of a white backdrop."""
    ramp = np.linspace(90, 150, 120, dtype=np.float32)
    rgb = np.zeros((100, 160, 3), dtype=np.uint8)
    rgb[20:80, 20:140] = np.stack([ramp, ramp * 0.8, ramp * 0.6], axis=-1).astype(np.uint8)
    rgb[rgb.sum(axis=2) == 0] = 255  # the backdrop, hidden by alpha, is white
    alpha = np.zeros((100, 160), dtype=np.uint8)
    alpha[20:80, 20:140] = 255
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def luma_of(rgb: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114])


def test_a_dull_product_is_stretched_and_keeps_its_hue_and_alpha() -> None:
    source = murky_cutout()
    before = np.asarray(source)
    data, report = enhance_image(encode(source), sharpen=False, max_pixels=LIMIT)
    after = decode(data)

    assert report["levels"]["applied"] is True
    product = before[..., 3] == 255
    spread_before = np.ptp(luma_of(before)[product])
    spread_after = np.ptp(luma_of(after)[product])
    # Capped at MAX_GAIN: wider by that factor (within rounding), not blown to 0–255.
    assert abs(spread_after / spread_before - MAX_GAIN) < 0.05
    assert np.array_equal(after[..., 3], before[..., 3])
    # The same gain on every channel: the red/green order and ratios survive.
    inside = after[30:70, 40:120].reshape(-1, 4).astype(np.int32)
    assert (inside[:, 0] >= inside[:, 1]).all()
    assert (inside[:, 1] >= inside[:, 2]).all()


def test_the_backdrop_does_not_count_when_measuring() -> None:
    # A dull product whose removed backdrop was black and white: measured with the
    # backdrop the range would look full and nothing would be done.
    source = np.asarray(murky_cutout()).copy()
    source[:10, :, :3] = 0
    source[-10:, :, :3] = 255
    luma = np.rint(luma_of(source)).astype(np.uint8)
    levels = measure_levels(luma, source[..., 3])
    assert levels.applied
    assert 74 <= levels.low <= 77
    assert 123 <= levels.high <= 127
    whole = measure_levels(luma, None)
    assert not whole.applied


def test_a_full_range_photo_is_left_as_it_is_but_sharpened() -> None:
    gradient = np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (120, 1))
    photo = Image.fromarray(np.dstack([gradient, gradient, gradient]), "RGB")
    photo.paste((255, 255, 255), (60, 30, 140, 90))
    data, report = enhance_image(encode(photo), max_pixels=LIMIT)
    assert report["levels"]["applied"] is False
    assert report["sharpened"] is True
    after = decode(data)
    assert after.shape == (120, 200, 3)
    # The unsharp mask deepens the dark side of the white square's edge.
    before = np.asarray(photo)
    assert int(after[60, 58, 0]) < int(before[60, 58, 0])


def test_the_engine_entry_point_returns_a_png_and_its_report() -> None:
    result = run({"image": encode(murky_cutout()), "sharpen": True}, EngineOptions())
    [file] = result.files
    assert file.mime_type == "image/png"
    assert Image.open(io.BytesIO(file.data)).mode == "RGBA"
    assert result.data["levels"]["gain"] == MAX_GAIN
    assert result.data["sharpened"] is True


def test_only_lightness_moves_so_a_red_product_stays_the_same_red() -> None:
    # A flat red mug with a darker shadow side: the stretch must not saturate the red.
    rgb = np.full((80, 80, 3), (200, 30, 30), dtype=np.uint8)
    rgb[:, :30] = (150, 20, 20)
    source = Image.fromarray(rgb, "RGB")
    data, report = enhance_image(encode(source), sharpen=False, max_pixels=LIMIT)
    assert report["levels"]["applied"] is True
    before, after = rgb.astype(int), decode(data).astype(int)
    # The channel differences (hue, saturation) are the same; lightness alone changed.
    assert np.abs((after[..., 0] - after[..., 1]) - (before[..., 0] - before[..., 1])).max() <= 1
    assert np.abs((after[..., 1] - after[..., 2]) - (before[..., 1] - before[..., 2])).max() <= 1
    assert not np.array_equal(after, before)
