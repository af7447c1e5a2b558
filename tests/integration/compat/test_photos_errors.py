"""Every refusal of seed 004's API, in the seed's body and leaving nothing behind.

Each bad request gets ``{"error", "message", "code"}`` with the seed's number (4001 not an
image by content, 4002 corrupt, 4003 over 10 MB or a bomb, 4000 a bad or missing field,
4004 not found) and no job or asset row is written. The rest of the application keeps its
own shape (``code`` = the HTTP status).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.compat.photos_stack import (
    PhotoStack,
    mug_photo,
    open_photo_stack,
    png_claiming,
)

MB = 1024 * 1024


def assert_seed_error(answer: httpx.Response, status: int, code: int, error: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "message", "code"}
    assert (body["error"], body["code"]) == (error, code)
    message: str = body["message"]
    return message


async def post_photo(
    stack: PhotoStack, data: bytes, name: str = "photo.png", **fields: str
) -> httpx.Response:
    return await stack.http.post(
        "/process_single", files={"file": (name, data, "image/png")}, data=fields
    )


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 256 * 1024):
        yield body[start : start + 256 * 1024]


async def test_bad_uploads_get_the_seed_errors_and_leave_nothing(
    database_url: str, tmp_path: Path
) -> None:
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        html = b"<!doctype html><html><body>not a photo</body></html>"
        message = assert_seed_error(
            await post_photo(stack, html, "photo.png"), 400, 4001, "INVALID_FILE_FORMAT"
        )
        assert message.startswith("Поддерживаются только PNG, JPEG, WEBP")
        gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
        assert_seed_error(await post_photo(stack, gif, "a.jpg"), 400, 4001, "INVALID_FILE_FORMAT")

        jpeg = mug_photo()
        truncated = await post_photo(stack, jpeg[: len(jpeg) // 2], "mug.jpg")
        assert assert_seed_error(truncated, 400, 4002, "FILE_CORRUPTED").startswith(
            "Файл поврежден"
        )

        bomb = await post_photo(stack, png_claiming(100_000, 100_000), "bomb.png")
        assert "100000×100000" in assert_seed_error(bomb, 413, 4003, "FILE_TOO_LARGE")

        # Declared over the limit: refused from the headers, before the body is read.
        eleven = b"\xff\xd8\xff\xe0" + b"\x00" * (11 * MB)
        assert_seed_error(await post_photo(stack, eleven, "big.jpg"), 413, 4003, "FILE_TOO_LARGE")
        # No Content-Length: counted as it arrives and cut off past the limit.
        request = stack.http.build_request(
            "POST", "/process_single", files={"file": ("big.jpg", eleven, "image/jpeg")}
        )
        body = request.read()
        streamed = await stack.http.post(
            "/process_single",
            content=chunked(body),
            headers={"Content-Type": request.headers["Content-Type"]},
        )
        assert_seed_error(streamed, 413, 4003, "FILE_TOO_LARGE")
        # Under the request's limit (the form's fields get 64 KiB) but over 10 MB of photo.
        just_over = b"\xff\xd8\xff\xe0" + b"\x00" * (10 * MB)
        assert_seed_error(
            await post_photo(stack, just_over, "big.jpg"), 413, 4003, "FILE_TOO_LARGE"
        )

        missing = await stack.http.post("/process_single", data={"enhance": "true"})
        assert "'file'" in assert_seed_error(missing, 400, 4000, "FILE_MISSING")
        not_a_form = await stack.http.post("/process_single", json={"file": "x"})
        assert_seed_error(not_a_form, 400, 4000, "FILE_MISSING")
        garbage = await stack.http.post(
            "/process_single",
            content=b'--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nnot ended',
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert garbage.status_code == 400
        assert garbage.json()["code"] == 4000

        assert await stack.counts() == (0, 0)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"modelId": "no-such-model"}, "unknown modelId"),
        ({"modelId": "openai/vision"}, "not a background model"),
        ({"modelId": "local/finish"}, "not a background model"),
        ({"lora_version": "v3"}, "lora_version"),
        ({"marketplace": "amazon"}, "marketplace"),
        ({"enhance": "perhaps"}, "enhance"),
        ({"custom_prompt": "true"}, "custom_prompt_text is empty"),
        ({"custom_prompt_text": "x" * 2001}, "custom_prompt_text"),
    ],
)
async def test_bad_fields_are_400_in_the_seed_body(
    database_url: str, tmp_path: Path, fields: dict[str, str], words: str
) -> None:
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        answer = await post_photo(stack, mug_photo(), "mug.jpg", **fields)
        assert words in assert_seed_error(answer, 400, 4000, "INVALID_PARAMETER")
        assert await stack.counts() == (0, 0)


async def test_unknown_ids_and_other_apis_jobs_are_404_in_the_seed_body(
    database_url: str, tmp_path: Path
) -> None:
    async with open_photo_stack(database_url, tmp_path / "data") as stack:
        http = stack.http
        for path in (
            "/single_progress/nope",
            "/single_image/nope/final",
            "/batch_progress/nope",
            "/batch_image/nope/a_original.png",
            "/download_batch/nope",
            "/history?batch_id=nope",
            "/models/no-such-model",
            "/models/local/finish",  # a model, but not a background one
        ):
            assert_seed_error(await http.get(path), 404, 4004, "NOT_FOUND")
        assert_seed_error(
            await http.get("/single_image/x/thumbnail"), 400, 4000, "INVALID_PARAMETER"
        )

        upload = await http.post("/v1/assets", files={"file": ("m.jpg", mug_photo())})
        native = await http.post(
            "/v1/jobs",
            json={
                "recipe": "product-photo",
                "items": [{"image": {"asset_id": upload.json()["id"]}}],
                "options": {"analysis": False},
            },
        )
        assert native.status_code == 201
        assert_seed_error(
            await http.get(f"/single_progress/{native.json()['id']}"), 404, 4004, "NOT_FOUND"
        )
        batch = await http.post("/process_batch", files=[("files", ("m.jpg", mug_photo()))])
        batch_id = batch.json()["batch_id"]
        assert_seed_error(await http.get(f"/single_progress/{batch_id}"), 404, 4004, "NOT_FOUND")
        assert (await http.get(f"/batch_progress/{batch_id}")).status_code == 200
        assert_seed_error(
            await http.get(f"/batch_image/{batch_id}/other_original.png"), 404, 4004, "NOT_FOUND"
        )

        # Everywhere else, Conveyor's own body: code is the HTTP status.
        invalid: dict[str, Any] = (await http.post("/v1/jobs", json={"items": []})).json()
        assert invalid["code"] == 422
        assert (await http.get("/v1/jobs/nope")).json()["code"] == 404
