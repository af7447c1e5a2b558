"""``BodySizeLimit`` with a path of its own: its limit, and its refusal in its own body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conveyor.core.http import BodySizeLimit, PathBodyLimit


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"received": len(await request.body())})


def app() -> BodySizeLimit:
    def refusal(status: int, message: str) -> dict[str, Any]:
        return {"error": "FILE_TOO_LARGE", "message": message, "code": 4003}

    inner = Starlette(
        routes=[Route("/own", echo, methods=["POST"]), Route("/other", echo, methods=["POST"])]
    )
    return BodySizeLimit(
        inner, body_limit=100, upload_limit=100, paths={"/own": PathBodyLimit(1000, refusal)}
    )


async def chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 100):
        yield b"x" * 100


async def test_a_path_of_its_own_has_its_limit_and_its_body() -> None:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.post("/own", content=b"x" * 500)).json() == {"received": 500}
        declared = await http.post("/own", content=b"x" * 1500)
        assert declared.status_code == 413
        assert declared.json()["code"] == 4003
        streamed = await http.post("/own", content=chunks(1500))  # no Content-Length
        assert streamed.status_code == 413
        assert streamed.json()["error"] == "FILE_TOO_LARGE"

        other = await http.post("/other", content=b"x" * 500)
        assert other.status_code == 413
        assert other.json() == {
            "error": "PAYLOAD_TOO_LARGE",
            "message": "request body over 100 bytes",
            "code": 413,
        }
