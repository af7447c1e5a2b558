"""The seed-004 router's own route class: its error shape and its per-address limit.

Every route of the router is a ``SeedRoute``. Around the route's whole handling (the form
parsed, dependencies solved, the endpoint run, the answer sent, a streamed ZIP included) it

* holds one of the client address's concurrency slots (``ConcurrencyLimit``): the 11th
  request at once from one address is answered 429 before its body is read;
* answers every error in the seed's body ``{"error", "message", "code": 4001}``
  (``errors.seed_error_body``): Conveyor's errors, FastAPI's validation errors (a malformed
  or incomplete form: 400 / 4000, where other routes answer 422), Starlette's HTTP errors,
  a database that does not answer (503 / 5003) and anything unexpected (500 / 5000).

The rest of the application keeps its ``{"error", "message", "code": <HTTP status>}``:
nothing here is installed on the app.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from conveyor.compat.photos.errors import (
    DatabaseUnavailable,
    InvalidParameter,
    PhotoApiError,
    TooManyConcurrentRequests,
    seed_error_body,
    seed_status,
)
from conveyor.compat.photos.service import PhotosService
from conveyor.deps import get_runtime
from conveyor.errors import ConveyorError

log = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# As much of a refused upload as is read and dropped before answering (see ``_drain``).
DRAIN_BYTES = 32 * 1024 * 1024


def seed_error_response(error: ConveyorError) -> JSONResponse:
    headers = {"Retry-After": f"{error.retry_after:.0f}"} if error.retry_after else None
    return JSONResponse(seed_error_body(error), seed_status(error), headers=headers)


def as_seed_error(exc: Exception, request: Request) -> ConveyorError:
    """Any exception a route may raise, as the error the seed's body describes."""
    if isinstance(exc, ConveyorError):
        return exc
    if isinstance(exc, RequestValidationError):
        first: dict[str, Any] = next(iter(exc.errors()), {})
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        what = str(first.get("msg") or "invalid request")
        return InvalidParameter(f"Неверный запрос: {where}: {what}" if where else what)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "invalid request"
        error = PhotoApiError(detail, status_code=exc.status_code, code="HTTP_ERROR")
        if exc.status_code < 500:
            error.seed_code = 4004 if exc.status_code == 404 else 4000
        return error
    if isinstance(exc, SQLAlchemyError):
        log.error("database error on %s %s: %s", request.method, request.url.path, exc)
        return DatabaseUnavailable("Ошибка базы данных: the database did not answer; try again")
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return PhotoApiError("internal error; see the server log")


async def _drain(request: Request) -> None:
    """Read (and drop) a refused request's body up to ``DRAIN_BYTES``, so that a client still
    sending its photo reads the 429 instead of a reset connection."""
    read = 0
    async for chunk in request.stream():
        read += len(chunk)
        if read > DRAIN_BYTES:
            return


class _SlotHeld(Response):
    """An answer that keeps its request's concurrency slot until it is sent (or the client
    goes away), so a ZIP that streams for minutes still counts."""

    def __init__(self, answer: Response, slot: contextlib.ExitStack) -> None:
        self.answer = answer
        self.slot = slot
        self.status_code = answer.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.slot:
            await self.answer(scope, receive, send)


class SeedRoute(APIRoute):
    """A route of the seed-004 API (see the module docstring)."""

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()

        async def seed_handler(request: Request) -> Response:
            service: PhotosService = get_runtime(request).photos
            peer = request.client.host if request.client else None
            address = service.client_address(peer, request.headers.getlist("x-forwarded-for"))
            slot = contextlib.ExitStack()
            try:
                try:
                    slot.enter_context(service.limit.slot(address))
                except TooManyConcurrentRequests:
                    await _drain(request)
                    raise
                answer = await handle(request)
            except Exception as exc:
                slot.close()
                return seed_error_response(as_seed_error(exc, request))
            except BaseException:
                # Cancelled (the client went away): the slot is free again all the same.
                slot.close()
                raise
            return _SlotHeld(answer, slot)

        return seed_handler
