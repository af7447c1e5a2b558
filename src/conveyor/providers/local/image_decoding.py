"""Decoding untrusted image bytes into one predictable Pillow image.

Every image engine starts here, so the rules for hostile or unusual input live in one place:
the pixel count is checked against an explicit decompression-bomb limit before any pixel is
decoded; truncated and corrupt files become ``EngineInputError``; the first frame of an
animation is used; EXIF orientation is applied; an embedded ICC profile converts the pixels
to sRGB (or is kept, when asked, for RGB images); and whatever the mode (CMYK, 16-bit,
palette, LA, YCbCr, bilevel) the result is 8-bit ``RGB`` or ``RGBA``. What was done is
reported in ``notes`` so a result can say so.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from conveyor.providers.local.engine import EngineInputError, EngineOptions

# Set explicitly (Pillow's own default is ~89 MP); each call re-applies its own limit.
Image.MAX_IMAGE_PIXELS = EngineOptions().max_image_pixels

# Decoders we accept: the formats clients upload. Fewer decoders, less attack surface.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
MIN_SIDE = 8

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
SRGB_ICC: bytes = _SRGB.tobytes()
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
# EXIF orientations that swap width and height.
_TRANSPOSING = {5, 6, 7, 8}


@dataclass(slots=True)
class DecodedImage:
    image: Image.Image  # mode "RGB" or "RGBA", 8 bits per channel
    source_format: str
    source_mode: str
    source_size: tuple[int, int]
    # The embedded profile, when it was kept instead of converted (``to_srgb=False``).
    icc_profile: bytes | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_alpha(self) -> bool:
        return self.image.mode == "RGBA"


def decode_image(
    data: bytes,
    *,
    max_pixels: int,
    to_srgb: bool = True,
    min_side: int = MIN_SIDE,
    fit_within: tuple[int, int] | None = None,
) -> DecodedImage:
    """Open, check and normalise an image.

    ``fit_within`` tells that the caller will shrink the image to fit that box, which lets
    a JPEG decode straight at a reduced scale (never below the size the box needs).
    """
    if not data:
        raise EngineInputError("the image file is empty")
    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        # Pillow only warns between the limit and twice the limit: make that an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img: Image.Image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise EngineInputError(
                f"image refused as a decompression bomb (limit {max_pixels:,} pixels, "
                f"set by CONVEYOR_ENGINE_MAX_IMAGE_PIXELS): {exc}"
            ) from exc
        except UnidentifiedImageError as exc:
            raise EngineInputError(
                "not a readable image (accepted: " + ", ".join(ACCEPTED_FORMATS) + ")"
            ) from exc
        except Exception as exc:  # every decoder has its own way of failing on garbage
            raise EngineInputError(f"corrupt image file: {exc}") from exc

    width, height = img.size
    if width * height > max_pixels:
        raise EngineInputError(
            f"image is {width}×{height} ({width * height:,} pixels), above the limit of "
            f"{max_pixels:,} pixels (decompression bomb guard; the limit is "
            "CONVEYOR_ENGINE_MAX_IMAGE_PIXELS)"
        )
    if width < min_side or height < min_side:
        raise EngineInputError(
            f"image is {width}×{height} pixels; at least {min_side}×{min_side} is needed"
        )
    decoded = DecodedImage(
        image=img,
        source_format=img.format or "unknown",
        source_mode=img.mode,
        source_size=(width, height),
    )

    frames = int(getattr(img, "n_frames", 1) or 1)
    if frames > 1:
        img.seek(0)
        decoded.notes.append(f"animated or multi-page image: used the first of {frames} frames")

    orientation = _exif_orientation(img)
    if fit_within is not None and img.format == "JPEG":
        box = fit_within[::-1] if orientation in _TRANSPOSING else fit_within
        scale = min(box[0] / width, box[1] / height)
        if scale < 1.0:
            # DCT scaling: a 12 MP JPEG decoded at 1/4 scale costs a tenth of full size.
            img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))

    try:
        img.load()
    except Exception as exc:
        raise EngineInputError(f"image file is truncated or corrupt: {exc}") from exc

    icc = img.info.get("icc_profile")
    if orientation not in (None, 1):
        try:
            img = ImageOps.exif_transpose(img)
            decoded.notes.append(f"rotated by EXIF orientation {orientation}")
        except Exception:
            decoded.notes.append("ignored an unreadable EXIF orientation")

    if img.mode in _SIXTEEN_BIT_MODES:
        img = _to_eight_bit(img)
        decoded.notes.append(f"{decoded.source_mode} samples reduced to 8 bits")
    if icc and (to_srgb or img.mode not in ("RGB", "RGBA")):
        img = _profile_to_srgb(img, icc, decoded.notes)
    elif icc:
        decoded.icc_profile = icc
    decoded.image = _normalise_mode(img, decoded.notes)
    return decoded


def _exif_orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(0x0112)
    except Exception:
        return None
    return int(value) if isinstance(value, int) else None


def _to_eight_bit(img: Image.Image) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        top = float(arr.max()) if arr.size else 1.0
        scale = 255.0 / top if top > 0 else 1.0
    else:
        # 16-bit data arrives as I;16 or I (32-bit); 8-bit-range "I" data stays as it is.
        scale = 255.0 / 65535.0 if float(arr.max(initial=0)) > 255 else 1.0
    return Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), mode="L")


def _profile_to_srgb(img: Image.Image, icc: bytes, notes: list[str]) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(source) or "").strip()
    except Exception:
        notes.append("ignored an unreadable ICC profile")
        return img
    alpha: Image.Image | None = None
    base = img
    if img.mode in ("RGBA", "LA", "PA"):
        alpha = img.getchannel("A")
        base = img.convert("RGB" if img.mode != "LA" else "L")
    elif img.mode == "P":
        base = img.convert("RGB")
    if base.mode not in ("RGB", "CMYK", "L"):
        notes.append(f"ignored an ICC profile on a {base.mode} image")
        return img
    try:
        converted = ImageCms.profileToProfile(base, source, _SRGB, outputMode="RGB")
    except Exception as exc:
        notes.append(f"ignored an ICC profile that does not fit the image ({exc})")
        return img
    assert converted is not None  # profileToProfile returns None only with inPlace=True
    notes.append(f"converted from the embedded profile '{description or 'unnamed'}' to sRGB")
    if alpha is not None:
        converted = converted.convert("RGBA")
        converted.putalpha(alpha)
    return converted


def _normalise_mode(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode in ("RGB", "RGBA"):
        return img
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode in ("LA", "La", "RGBa"):
        return img.convert("RGBA")
    if mode == "CMYK":
        notes.append("converted CMYK to RGB without a colour profile")
        return img.convert("RGB")
    try:
        return img.convert("RGB")
    except Exception as exc:
        raise EngineInputError(f"unsupported colour mode {mode}") from exc
