"""HTTP plumbing shared by every router: the error body, body-size limits, the request guard
(NUL characters, JSON nesting), and the dependency that finds the running services."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.core.db import database_unreachable
from conveyor.core.sizes import describe_size
from conveyor.errors import BadRequest, ConveyorError

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

# Seconds a client is told to wait when the database is away (a restart takes a few).
DATABASE_RETRY_AFTER = 2


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, "code": status, **extra}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, **extra), status_code=status)


# What FastAPI reports when a JSON body route got something it did not read as JSON.
_UNREAD_BODY = frozenset({"model_attributes_type", "dict_type", "model_type", "json_invalid"})


def _body_not_json(request: Request, exc: RequestValidationError) -> str | None:
    """Why a body was not read, when it was not sent as JSON (a form post from ``curl -d``,
    or no ``Content-Type`` and no valid JSON): the header is the thing to fix."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return None
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        whole_body = len(loc) == 1 or err.get("type") == "json_invalid"
        if loc[:1] == ("body",) and whole_body and err.get("type") in _UNREAD_BODY:
            said = f"it says {media!r}" if media else "it has none"
            return f"send the body as JSON with the header Content-Type: application/json ({said})"
    return None


def install_error_handlers(app: FastAPI) -> None:
    """One place turns every error into the same JSON body."""

    async def conveyor_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConveyorError)
        if exc.status_code >= 500:
            log.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.message)
        extra = {"details": exc.details} if exc.details else {}
        return error_response(exc.status_code, exc.code, exc.message, **extra)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        unread = _body_not_json(request, exc)
        if unread is not None:
            return error_response(415, "UNSUPPORTED_MEDIA_TYPE", unread)
        problems = []
        for err in exc.errors()[:20]:
            location = ".".join(str(p) for p in err.get("loc", ()))
            problems.append({"loc": location, "msg": str(err.get("msg"))})
        first = problems[0] if problems else {"loc": "", "msg": "invalid request"}
        message = f"{first['loc']}: {first['msg']}" if first["loc"] else first["msg"]
        return error_response(422, "VALIDATION_ERROR", message, details={"errors": problems})

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "HTTP_ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path; a path
            # served by several routes (GET and POST /v1/jobs) allows all of theirs.
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return JSONResponse(
            error_body(exc.status_code, code, message), status_code=exc.status_code, headers=headers
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_unreachable(exc):
            # Not a fault of this request: the database is restarting or failing over.
            log.warning("database unreachable on %s %s: %s", request.method, request.url.path, exc)
            return JSONResponse(
                error_body(503, "DATABASE_UNAVAILABLE", "the database is unavailable; try again"),
                status_code=503,
                headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "INTERNAL_ERROR", "internal error; see the server log")

    app.add_exception_handler(ConveyorError, conveyor_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """The methods some route answers on this path, asked of the routes themselves (included
    routers hide their routes' methods)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


class _BodyTooLarge(Exception):
    pass


DRAIN_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class PathBodyLimit:
    """A path with a body limit of its own and its own way to say no: ``refusal(status,
    message)`` is the JSON body (a compatibility API answers in its seed's shape).

    ``drain`` is how much of a refused body is read and dropped so that a client still
    sending gets to read the answer (closing on unread data resets the connection, and the
    answer with it): an upload path sets it above the sizes its clients mistakenly send."""

    limit: int
    refusal: Callable[[int, str], dict[str, Any]]
    drain: int = DRAIN_BYTES


@dataclass(frozen=True, slots=True)
class LimitSetting:
    """A size limit as the operator set it (``limit`` bytes) and the setting's name."""

    limit: int
    setting: str


class BodySizeLimit:
    """Refuse request bodies over a limit before they are read into memory or onto disk.

    Multipart uploads get ``upload_limit``; everything else ``body_limit``; the paths in
    ``paths`` their own (``PathBodyLimit``). A declared ``Content-Length`` over the limit is
    refused at once; a chunked body is counted as it arrives and cut off when it passes the
    limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        body_limit: int,
        upload_limit: int,
        paths: Mapping[str, PathBodyLimit] | None = None,
        body_setting: LimitSetting | None = None,
        upload_setting: LimitSetting | None = None,
    ) -> None:
        self.app = app
        self.body_limit = body_limit
        self.upload_limit = upload_limit
        self.paths = dict(paths or {})
        # How a refusal names the limit and the setting that changes it.
        self.body_setting = body_setting
        self.upload_setting = upload_setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        upload = content_type.startswith("multipart/")
        limit = self.upload_limit if upload else self.body_limit
        named = self.upload_setting if upload else self.body_setting
        too_large = f"request body over {limit} bytes"
        if named is not None:
            what = "the upload" if upload else "the request body"
            too_large = (
                f"{what} is larger than the limit of {describe_size(named.limit)} "
                f"(set by {named.setting})"
            )
        refusal: Callable[[int, str], dict[str, Any]] | None = None
        drain = DRAIN_BYTES
        if (own := self.paths.get(scope.get("path", ""))) is not None:
            limit, refusal, drain = own.limit, own.refusal, own.drain
            too_large = f"request body over {limit} bytes"
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await _reject(send, 400, "BAD_REQUEST", "invalid Content-Length header", refusal)
                return
            if too_big:
                await _drain(receive, drain)
                await _reject(send, 413, "PAYLOAD_TOO_LARGE", too_large, refusal)
                return
        received = 0
        started = False
        overflow = False

        async def counting_receive() -> Message:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflow:
                # Whatever the app makes of the cut-off body (frameworks turn read errors
                # into a 400), the client gets the 413 it deserves instead.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _drain(receive, drain)
                    await _reject(send, 413, "PAYLOAD_TOO_LARGE", too_large, refusal)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not started:
                await _drain(receive, drain)
                await _reject(send, 413, "PAYLOAD_TOO_LARGE", too_large, refusal)


async def _drain(receive: Receive, budget: int = DRAIN_BYTES) -> None:
    """Read (and drop) a little more of the body, so the client, still sending, gets to read
    our answer instead of a reset connection. A huge upload is not read to its end."""
    read = 0
    while read < budget:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _reject(
    send: Send,
    status: int,
    code: str,
    message: str,
    refusal: Callable[[int, str], dict[str, Any]] | None = None,
) -> None:
    document = refusal(status, message) if refusal else error_body(status, code, message)
    body = json.dumps(document, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# How deep a JSON body may nest (objects and arrays). The deepest body any of Conveyor's APIs
# documents is a handful of levels; json.loads recurses per level, so a body a thousand
# levels deep would end in a RecursionError (a 500) wherever it is parsed.
MAX_JSON_DEPTH = 64

# Bytes the nesting scan stops at: quotes, backslashes and brackets. Everything between them
# is skipped by the regular expression engine, so a 10 MB body costs one pass in C.
_JSON_TOKENS = re.compile(rb'["\\\[\]{}]')
_UNESCAPED_NUL = b"\x00"
_ESCAPED_NUL = b"u0000"
_FORM_NUL = re.compile(rb"%00")
# Bodies carried as bytes, never parsed as text: not scanned.
_BINARY_TYPES = ("application/octet-stream", "image/", "audio/", "video/")

RenderRefusal = Callable[[ConveyorError], dict[str, Any]]


def standard_refusal(error: ConveyorError) -> dict[str, Any]:
    return error_body(error.status_code, error.code, error.message)


def nul_refusal(where: str) -> BadRequest:
    return BadRequest(
        f"{where} holds a NUL character (\\u0000), which Conveyor does not store",
        code="NUL_CHARACTER",
    )


def text_body_problem(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> BadRequest | None:
    """Why a JSON (or other text) body is refused before any route parses it: a NUL, raw or
    escaped as ``\\u0000`` inside a string, or nesting deeper than ``max_depth``.

    The scan walks tokens in a loop (no recursion), so no depth can exhaust the stack; text
    that is not JSON is scanned the same way and is at worst refused as too deep."""
    if _UNESCAPED_NUL in body:
        return nul_refusal("the request body")
    depth = 0
    in_string = False
    skip_to = 0
    for match in _JSON_TOKENS.finditer(body):
        at = match.start()
        if at < skip_to:
            continue  # the character after a backslash
        token = body[at]
        if in_string:
            if token == 0x5C:  # backslash: the next character is escaped
                if body.startswith(_ESCAPED_NUL, at + 1):
                    return nul_refusal("the request body")
                skip_to = at + 2
            elif token == 0x22:
                in_string = False
        elif token == 0x22:
            in_string = True
        elif token in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return BadRequest(
                    f"the JSON body nests deeper than {max_depth} levels",
                    code="JSON_TOO_DEEP",
                )
        elif token in (0x5D, 0x7D):
            depth -= 1
    return None


def _query_problem(scope: Scope) -> BadRequest | None:
    if "\x00" in scope.get("path", ""):
        return nul_refusal("the path")
    query: bytes = scope.get("query_string", b"")
    if _UNESCAPED_NUL in query or _FORM_NUL.search(query):
        return nul_refusal("the query string")
    return None


class RequestGuard:
    """Refuse, with a 400 in the error shape of the API the path belongs to, what no route
    could store or parse safely: a NUL character in the path, the query string or a text
    body (JSON, form fields), and a JSON body nested deeper than ``max_depth``.

    A text body is read whole before the route sees it (``BodySizeLimit``, outside this
    middleware, bounds it) and handed on unchanged when it passes. Multipart bodies go
    through untouched: their files are bytes, and the routes that parse them refuse a NUL
    in a file name or field themselves. ``render_for(path)`` gives the body of a refusal;
    ``None`` means Conveyor's standard one."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        render_for: Callable[[str], RenderRefusal | None] | None = None,
        max_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.render_for = render_for
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _query_problem(scope)
        if problem is not None:
            await self._refuse(scope, receive, send, problem)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        no_body = headers.get(b"content-length") in (None, b"0") and (
            b"transfer-encoding" not in headers
        )
        if no_body or content_type.startswith(("multipart/", *_BINARY_TYPES)):
            await self.app(scope, receive, send)
            return
        body, ended = await _read_body(receive)
        if content_type.startswith("application/x-www-form-urlencoded"):
            if _UNESCAPED_NUL in body or _FORM_NUL.search(body):
                problem = nul_refusal("a form field")
        else:
            problem = text_body_problem(body, self.max_depth)
        if problem is not None:
            await self._refuse(scope, receive, send, problem, body_read=True)
            return
        await self.app(scope, _replay(body, ended, receive), send)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        problem: ConveyorError,
        *,
        body_read: bool = False,
    ) -> None:
        if not body_read:
            await _drain(receive)
        render = (self.render_for(scope.get("path", "")) if self.render_for else None) or (
            standard_refusal
        )
        body = json.dumps(render(problem), ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": problem.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body; ``False`` when the client went away before sending it all."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, ended: bool, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the client's own
    messages (a disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            if ended:
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}
        return await receive()

    return replay
