"""Finishing and image decoding: exact preset sizes, orientation, odd modes, hostile files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from engine_samples import (
    BAD_PRODUCT_IMAGES,
    PRODUCT_RED,
    encode,
    linear_rgb_profile,
    product_photo,
)
from PIL import Image, ImageCms

from conveyor.providers.local import EngineInputError
from conveyor.providers.local.finish import PRESETS, finish_image
from conveyor.providers.local.image_decoding import SRGB_ICC, decode_image

LIMIT = 64_000_000


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(int(p) - c) <= tolerance for p, c in zip(pixel[:3], colour, strict=True))


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("output_format", ["jpeg", "png", "webp"])
def test_finish_gives_exactly_the_preset_size_on_white(preset: str, output_format: str) -> None:
    photo, _ = product_photo(size=(640, 480))
    done = finish_image(
        encode(photo, "JPEG", quality=92), preset=preset, output_format=output_format
    )
    result = _open(done.data)
    expected = PRESETS[preset]
    assert result.size == (expected.width, expected.height) == (done.width, done.height)
    assert result.format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[output_format]
    rgb = result.convert("RGB")
    for corner in [
        (0, 0),
        (rgb.width - 1, 0),
        (0, rgb.height - 1),
        (rgb.width - 1, rgb.height - 1),
    ]:
        assert _near(rgb.getpixel(corner), (255, 255, 255), tolerance=3)  # type: ignore[arg-type]
    assert result.info.get("icc_profile") == SRGB_ICC
    assert "exif" not in result.info


def test_marketplace_preset_sizes_are_the_documented_ones() -> None:
    sizes = {name: (p.width, p.height) for name, p in PRESETS.items()}
    assert sizes == {
        "square": (1000, 1000),
        "yandex-market": (1000, 1000),
        "ozon": (1200, 1600),
        "wildberries": (900, 1200),
    }
    assert all(p.source for p in PRESETS.values())


def test_cut_out_is_trimmed_centred_and_placed_on_a_colour() -> None:
    cut = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    cut.paste(Image.new("RGBA", (100, 200), (*PRODUCT_RED, 255)), (20, 30))
    done = finish_image(encode(cut), preset="square", size=500, background="#00ff00", margin=0.1)
    result = _open(done.data).convert("RGB")
    assert result.size == (500, 500)
    assert _near(result.getpixel((250, 250)), PRODUCT_RED, 5)  # type: ignore[arg-type]
    assert _near(result.getpixel((5, 5)), (0, 255, 0), 5)  # type: ignore[arg-type]
    # Trimmed 100×200 fitted into 400×400 → 200×400, centred: columns 150..349 are product.
    assert _near(result.getpixel((155, 250)), PRODUCT_RED, 5)  # type: ignore[arg-type]
    assert _near(result.getpixel((140, 250)), (0, 255, 0), 5)  # type: ignore[arg-type]


def test_transparent_background_keeps_alpha() -> None:
    cut = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    cut.paste(Image.new("RGBA", (50, 50), (*PRODUCT_RED, 255)), (75, 75))
    result = _open(finish_image(encode(cut), background="transparent", size=300).data)
    assert result.mode == "RGBA"
    assert result.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert result.getpixel((150, 150))[3] == 255  # type: ignore[index]


def _exif_rotated_jpeg() -> bytes:
    # Stored landscape: left half red, right half blue; EXIF 6 says "display rotated 90° CW".
    stored = Image.new("RGB", (400, 200), (0, 0, 255))
    stored.paste(Image.new("RGB", (200, 200), PRODUCT_RED), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_is_applied_before_anything_else() -> None:
    decoded = decode_image(_exif_rotated_jpeg(), max_pixels=LIMIT)
    assert decoded.image.size == (200, 400)
    assert _near(decoded.image.getpixel((100, 50)), PRODUCT_RED)  # type: ignore[arg-type]
    assert _near(decoded.image.getpixel((100, 350)), (0, 0, 255))  # type: ignore[arg-type]
    assert any("EXIF orientation 6" in note for note in decoded.notes)

    done = finish_image(_exif_rotated_jpeg(), preset="wildberries", margin=0.0)
    result = _open(done.data).convert("RGB")
    assert result.size == (900, 1200)
    assert _near(result.getpixel((450, 150)), PRODUCT_RED)  # type: ignore[arg-type]
    assert _near(result.getpixel((450, 1050)), (0, 0, 255))  # type: ignore[arg-type]
    assert _near(result.getpixel((50, 600)), (255, 255, 255), 3)  # type: ignore[arg-type]


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (300, 200), (0, 255, 255, 0))  # pure red ink
    done = finish_image(encode(cmyk, "JPEG", quality=95), size=300, margin=0.0)
    result = _open(done.data).convert("RGB")
    red, green, blue = result.getpixel((150, 150))  # type: ignore[misc]
    assert red > 200
    assert green < 60
    assert blue < 60


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    values = np.full((120, 160), 32896, dtype=np.uint16)  # 50 % grey in 16 bits
    source = Image.fromarray(values)
    assert source.mode.startswith("I;16")
    decoded = decode_image(encode(source), max_pixels=LIMIT)
    assert decoded.image.mode == "RGB"
    assert abs(decoded.image.getpixel((10, 10))[0] - 128) <= 1  # type: ignore[index]
    assert any("8 bits" in note for note in decoded.notes)


def test_palette_and_la_images_keep_their_transparency() -> None:
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([255, 255, 255, 200, 30, 40] + [0] * 762)
    palette.paste(1, (16, 16, 48, 48))
    palette.info["transparency"] = 0
    assert decode_image(encode(palette, transparency=0), max_pixels=LIMIT).image.mode == "RGBA"

    grey_alpha = Image.new("LA", (64, 64), (128, 0))
    grey_alpha.paste((10, 255), (16, 16, 48, 48))
    decoded = decode_image(encode(grey_alpha), max_pixels=LIMIT)
    assert decoded.image.mode == "RGBA"
    assert decoded.image.getpixel((0, 0))[3] == 0  # type: ignore[index]


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [
        Image.new("RGB", (64, 64), colour) for colour in (PRODUCT_RED, (0, 200, 0), (0, 0, 200))
    ]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = decode_image(gif.getvalue(), max_pixels=LIMIT)
    assert _near(decoded.image.getpixel((32, 32)), PRODUCT_RED)  # type: ignore[arg-type]
    assert any("first of 3 frames" in note for note in decoded.notes)


def test_embedded_profile_is_converted_to_srgb() -> None:
    grey = Image.new("RGB", (120, 90), (128, 128, 128))
    data = encode(grey, "PNG", icc_profile=linear_rgb_profile())
    decoded = decode_image(data, max_pixels=LIMIT)
    value = decoded.image.getpixel((10, 10))
    assert all(180 <= v <= 195 for v in value)  # type: ignore[union-attr]
    assert any("to sRGB" in note for note in decoded.notes)
    kept = decode_image(data, max_pixels=LIMIT, to_srgb=False)
    assert kept.image.getpixel((10, 10)) == (128, 128, 128)
    assert kept.icc_profile == linear_rgb_profile()


def test_color_profile_keep_embeds_the_source_profile() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    marker = profile.tobytes()
    photo, _ = product_photo(size=(320, 240))
    data = encode(photo, "PNG", icc_profile=marker)
    kept = _open(finish_image(data, color_profile="keep", size=200).data)
    assert kept.info.get("icc_profile") == marker
    converted = _open(finish_image(data, color_profile="srgb", size=200).data)
    assert converted.info.get("icc_profile") == SRGB_ICC


def test_large_jpeg_is_decoded_at_a_reduced_scale() -> None:
    big = Image.new("RGB", (4000, 3000), (250, 250, 250))
    big.paste(Image.new("RGB", (2000, 1500), PRODUCT_RED), (1000, 750))
    done = finish_image(encode(big, "JPEG", quality=85), size=1000, margin=0.0)
    result = _open(done.data).convert("RGB")
    assert result.size == (1000, 1000)
    assert _near(result.getpixel((500, 500)), PRODUCT_RED)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(BAD_PRODUCT_IMAGES))
def test_bad_images_are_input_errors(name: str) -> None:
    with pytest.raises(EngineInputError) as caught:
        finish_image(BAD_PRODUCT_IMAGES[name])
    assert str(caught.value)


def test_garbage_says_which_formats_are_accepted() -> None:
    with pytest.raises(EngineInputError, match=r"not a readable image \(accepted: JPEG, PNG, WEBP"):
        decode_image(BAD_PRODUCT_IMAGES["not an image"], max_pixels=LIMIT)


def test_bomb_limit_is_explicit_and_configurable() -> None:
    photo = encode(Image.new("RGB", (300, 300), "white"))
    with pytest.raises(EngineInputError, match="decompression bomb"):
        decode_image(photo, max_pixels=50_000)
    assert decode_image(photo, max_pixels=90_000).image.size == (300, 300)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "amazon"}, "unknown preset"),
        ({"output_format": "jpeg", "background": "transparent"}, "JPEG cannot be transparent"),
        ({"preset": "yandex-market", "background": "transparent"}, "transparent"),
        ({"background": "not-a-colour"}, "unknown background"),
        ({"quality": 0}, "quality"),
    ],
)
def test_bad_options_are_input_errors(kwargs: dict[str, object], message: str) -> None:
    photo = encode(product_photo(size=(200, 150))[0])
    with pytest.raises(EngineInputError, match=message):
        finish_image(photo, **kwargs)  # type: ignore[arg-type]


def test_fully_transparent_cut_out_is_an_input_error() -> None:
    with pytest.raises(EngineInputError, match="fully transparent"):
        finish_image(encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0))))
