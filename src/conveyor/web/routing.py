"""How every console route answers: HTML pages, errors as pages, the security headers.

``ConsoleRoute`` wraps each console handler: a request that needs a sign-in is sent to the
sign-in page, any ``ConveyorError`` becomes an error page with its status and message (the
API's JSON body would mean nothing to a person), a new session's cookie is set, and every
answer carries the console's security headers (scripts and styles only from this server, no
framing, no MIME sniffing, no referrer sent elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from conveyor.errors import ConveyorError
from conveyor.web.session import COOKIE_NAME, SignInRequired, Viewer
from conveyor.web.views import Badge

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SameSiteBounce(ConveyorError):
    """A person arrived from another site: the browser withheld the ``SameSite=Strict``
    cookie, so the console answers with a page that reloads itself from this site."""

    status_code = 200
    code = "SAME_SITE_BOUNCE"


def _when(moment: datetime | float | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["size"] = _size


def render(
    request: Request,
    name: str,
    *,
    viewer: Viewer | None,
    badges: list[Badge] | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page (or, for a template whose name starts with ``_``, a fragment)."""
    return TEMPLATES.TemplateResponse(
        request,
        name,
        {"viewer": viewer, "badges": badges or [], **context},
        status_code=status_code,
    )


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/console/sign-in?next={quote(target, safe='')}"
    if request.headers.get("hx-request"):
        # htmx follows redirects itself and would swap the sign-in page into a fragment.
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def _error_page(request: Request, status: int, message: str) -> Response:
    viewer = getattr(request.state, "console_viewer", None)
    return render(
        request, "error.html", viewer=viewer, status_code=status, status=status, message=message
    )


def apply_headers(request: Request, response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    cookie = getattr(request.state, "console_cookie", None)
    if cookie is not None:
        value, max_age = cookie
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                response = _sign_in_redirect(request)
            except SameSiteBounce:
                query = f"?{request.url.query}" if request.url.query else ""
                target = request.url.path + query
                response = render(request, "bounce.html", viewer=None, target=target)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:])
                message = f"{where}: {first.get('msg', 'invalid request')}".strip(": ")
                response = _error_page(request, 422, message)
            except ConveyorError as exc:
                response = _error_page(request, exc.status_code, exc.message)
            return apply_headers(request, response)

        return console_handler
