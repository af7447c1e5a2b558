"""Image URLs are an SSRF boundary: each bad one is refused with a reason, per lot.

Only the image server's own address (127.0.0.2) is allowed by the settings, as an operator
would allow one internal image store; everything else private stays refused: 127.0.0.1,
10.x, the cloud metadata address, a redirect to either, a body announcing 5 GB, one that
never ends, bytes that are not an image, and an image that does not decode.
"""

from __future__ import annotations

import pytest

from tests.integration.compat.descriptions_stack import KEYS, VISION_MODEL, StartStack
from tests.integration.compat.seed_client import SeedClient, SeedClientError, lot

MiB = 1024 * 1024


async def test_every_bad_image_is_skipped_with_its_reason(start_stack: StartStack) -> None:
    async with start_stack(fetch_max_bytes=MiB) as stack:
        images = stack.images
        client = SeedClient(stack.base_url, KEYS["acme"])
        mixed = [
            images.url("img/good.jpg"),
            f"http://127.0.0.1:{images.base_url.rsplit(':', 1)[1]}/img/good.jpg",
            "http://10.0.0.5/photo.jpg",
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            images.url("redirect?to=http://127.0.0.1:9/img/a.jpg"),
            images.url("redirect?to=http://169.254.169.254/latest/meta-data/"),
            images.url("huge.jpg"),
            images.url("endless.png"),
            images.url("page.html"),
            images.url("corrupt.png"),
            "http://[::1]/a.jpg",
            "http://2130706433/a.jpg",  # 127.0.0.1 spelled as one number
        ]
        job_id = await client.create_batch_job(
            [
                lot("mixed", *mixed, info="2018 VW Golf"),
                lot("only-private", "http://169.254.169.254/", "http://10.1.2.3/x.jpg"),
            ]
        )
        results = await client.get_results(job_id) or await client.wait_for_completion(
            job_id, poll_interval=0.05
        )

        assert results is not None
        assert results["status"] == "completed"  # one lot failed, the job did not
        described, refused = results["results"]["lots"]
        warnings = described["warnings"]
        assert len(warnings) == len(mixed) - 1
        expectations = {
            2: "loopback",
            3: "private",
            4: "link-local",
            5: "loopback",
            6: "link-local",
            7: "sends 5,368,709,120 bytes, more than the limit",
            8: "more than the limit of 1,048,576",
            9: "did not send an image (got text/html)",
            10: "corrupt",
            11: "loopback",
            12: "URL refused",
        }
        for number, words in expectations.items():
            [warning] = [w for w in warnings if w.startswith(f"image {number}: ")]
            assert words in warning, warning
            assert warning.endswith("; skipped")
        # Only the one good photo reached the model.
        assert "based on 1 image" in described["descriptions"][0]["damages"]

        assert refused["status"] == "failed"
        assert refused["descriptions"] == []
        assert refused["error"].startswith("no usable image in lot 'only-private': image 1: ")
        assert "image 2: URL refused" in refused["error"]
        assert "private" in refused["error"]
        assert stack.counters() == {VISION_MODEL: 1}
        # The redirects were followed only as far as the check: nothing private was fetched.
        assert images.hits["/redirect"] == 2


async def test_a_sync_lot_with_only_refused_images_fails_with_the_reason(
    start_stack: StartStack,
) -> None:
    async with start_stack() as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        with pytest.raises(SeedClientError, match="API Error: 422") as failed:
            await client.sync_generate("car-9", ["http://10.20.30.40/car.jpg"], "", ["en", "ru"])
        body = failed.value.body
        assert body["error"] == "LOT_FAILED"
        assert body["lot_id"] == "car-9"
        assert "10.20.30.40" in body["message"]
        assert "private address" in body["message"]
        status = await client.get_job_status(body["job_id"])
        assert status["status"] == "failed"
        assert "lot 'car-9'" in status["error_message"]
        assert stack.counters() == {}


async def test_private_addresses_pass_only_where_the_operator_allows_them(
    start_stack: StartStack,
) -> None:
    async with start_stack(allowed_fetch_networks=[]) as stack:
        client = SeedClient(stack.base_url, KEYS["acme"])
        with pytest.raises(SeedClientError, match="API Error: 422") as failed:
            await client.sync_generate("car-1", [stack.images.url("img/a.jpg")])
        assert "loopback address" in failed.value.body["message"]
        assert stack.images.hits == {}
