"""A soft drop shadow under a cut-out, so a light product stays visible on a light canvas.

A white sneaker cut out and placed on white has no edge left to see. Product photographers
keep the shadow for that reason; a cut-out has lost it, so we draw one back: the product's
own silhouette (its alpha), moved down a little, blurred wide and laid under the product at
a low opacity. It reads as the product standing a little above a lit surface, darkens the
canvas just around the product's outline (more under it than above), and never changes a
pixel of the product itself. Sizes are shares of the canvas, so every preset looks the same.
"""

from __future__ import annotations

from PIL import Image, ImageFilter

# Shares of the canvas's shorter side.
OFFSET_SHARE = 0.008
BLUR_SHARE = 0.012
# The darkest the shadow gets, as a share of full black over the background.
OPACITY = 0.38
SHADOW_COLOUR = (0, 0, 0)


def shadow_mask(
    picture: Image.Image, canvas_size: tuple[int, int], offset: tuple[int, int]
) -> Image.Image:
    """The shadow's strength (mode ``L``) on the canvas for an RGBA picture placed at
    ``offset``: its alpha, shifted down, blurred and scaled to ``OPACITY``."""
    shorter = min(canvas_size)
    drop = max(1, round(shorter * OFFSET_SHARE))
    blur = max(1.0, shorter * BLUR_SHARE)
    silhouette = Image.new("L", canvas_size, 0)
    silhouette.paste(picture.getchannel("A"), (offset[0], offset[1] + drop))
    soft = silhouette.filter(ImageFilter.GaussianBlur(blur))
    return soft.point(lambda value: round(value * OPACITY))


def under(canvas: Image.Image, mask: Image.Image) -> Image.Image:
    """The canvas (``RGB`` or ``RGBA``) with the shadow laid on it."""
    if canvas.mode == "RGBA":
        layer = Image.new("RGBA", canvas.size, (*SHADOW_COLOUR, 0))
        layer.putalpha(mask)
        return Image.alpha_composite(canvas, layer)
    dark = Image.new(canvas.mode, canvas.size, SHADOW_COLOUR)
    return Image.composite(dark, canvas, mask)
