"""Background models in the simulator: cut-outs of the photo a request sent, and failures
forced on one model only (what the product-photo chain is tested against)."""

from __future__ import annotations

import base64
import io
from typing import Any

import aiohttp
import numpy as np
from PIL import Image

from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator

FAL = {"Authorization": "Key sim-key"}
REPLICATE = {"Authorization": "Bearer sim-key"}
RED, TEAL = (200, 30, 30), (0, 128, 128)


def product_photo(size: tuple[int, int] = (320, 240)) -> bytes:
    """A red box on a teal backdrop, as a JPEG (lossy edges, like a real upload)."""
    image = Image.new("RGB", size, TEAL)
    image.paste(RED, (100, 60, 220, 180))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def fal_result(
    http: aiohttp.ClientSession, sim: RunningSimulator, clock: ManualClock, app: str, body: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{sim.base_urls['fal']}/{app}", json=body, headers=FAL) as response:
        queued = await response.json()
    clock.advance(10)
    async with http.get(queued["response_url"], headers=FAL) as response:
        return response.status, await response.json()


async def download(http: aiohttp.ClientSession, url: str) -> Image.Image:
    async with http.get(url) as response:
        return Image.open(io.BytesIO(await response.read()))


def assert_is_the_red_box_cut_out(image: Image.Image, size: tuple[int, int]) -> None:
    assert image.format == "PNG"
    assert image.mode == "RGBA"
    assert image.size == size
    pixels = np.asarray(image)
    assert pixels[5, 5, 3] == 0  # backdrop corner: transparent
    assert pixels[120, 160, 3] == 255  # middle of the box: opaque
    assert np.abs(pixels[120, 160, :3].astype(int) - RED).max() <= 12
    opaque = pixels[..., 3] > 127
    box = np.zeros_like(opaque)
    box[60:180, 100:220] = True
    assert (opaque & box).sum() / (opaque | box).sum() > 0.95  # the box, give or take its edge


async def test_kontext_lora_and_birefnet_cut_the_sent_photo_out(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    photo = data_url(product_photo())
    status, lora = await fal_result(
        http, sim, clock, "fal-ai/flux-kontext-lora", {"image_url": photo, "prompt": "on white"}
    )
    assert status == 200
    [made] = lora["images"]  # FLUX's own answer shape
    assert (made["width"], made["height"], made["content_type"]) == (320, 240, "image/png")
    assert_is_the_red_box_cut_out(await download(http, made["url"]), (320, 240))

    status, birefnet = await fal_result(http, sim, clock, "fal-ai/birefnet", {"image_url": photo})
    assert status == 200
    assert "images" not in birefnet
    assert_is_the_red_box_cut_out(await download(http, birefnet["image"]["url"]), (320, 240))


async def test_replicate_remove_background_cuts_the_sent_photo_out(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    body = {
        "version": "bria/remove-background",
        "input": {"image": data_url(product_photo(), "image/jpeg")},
    }
    url = f"{sim.base_urls['replicate']}/v1/predictions"
    async with http.post(url, json=body, headers=REPLICATE) as response:
        prediction = await response.json()
    clock.advance(10)
    async with http.get(prediction["urls"]["get"], headers=REPLICATE) as response:
        done = await response.json()
    assert done["status"] == "succeeded"
    assert_is_the_red_box_cut_out(await download(http, done["output"][0]), (320, 240))


async def test_a_photo_it_cannot_read_gets_a_drawn_cutout(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    for reference in ("https://example.com/p.jpg", "data:image/png;base64,bm90IGFuIGltYWdl"):
        status, result = await fal_result(
            http, sim, clock, "fal-ai/birefnet", {"image_url": reference}
        )
        assert status == 200
        image = await download(http, result["image"]["url"])
        assert image.mode == "RGBA"
        assert image.size == (1024, 1024)
        assert image.getchannel("A").getextrema() == (0, 255)


async def test_a_big_photo_is_cut_out_no_larger_than_the_side_cap(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"max_image_side": 160})
    photo = data_url(product_photo((640, 480)))
    _, result = await fal_result(http, sim, clock, "fal-ai/birefnet", {"image_url": photo})
    assert (result["image"]["width"], result["image"]["height"]) == (160, 120)
    assert (await download(http, result["image"]["url"])).size == (160, 120)


async def test_one_model_can_be_made_to_fail_while_the_next_works(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    sim.update_config({"models": {"fal/fal-ai/flux-kontext-lora": {"failure_rate": 1.0}}})
    photo = data_url(product_photo())
    status, failed = await fal_result(
        http, sim, clock, "fal-ai/flux-kontext-lora", {"image_url": photo, "prompt": "x"}
    )
    assert status == 422
    assert failed["detail"] == "simulated generation failure"
    status, fine = await fal_result(http, sim, clock, "fal-ai/birefnet", {"image_url": photo})
    assert status == 200
    assert fine["image"]["content_type"] == "image/png"
