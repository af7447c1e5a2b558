"""Generated files: the download route, and references to them in protocol answers.

Results point at ``{origin}/files/{file_id}`` the way providers point at their CDN; the
download is counted (and stamps the task's first download) so a benchmark can measure
"done → fetched". When the run's ``encoding`` is ``data_url`` or ``base64`` the bytes go
inline instead, which is how some providers answer small results.
"""

from __future__ import annotations

from aiohttp import web

from conveyor.sim.config import Encoding
from conveyor.sim.media import encode, render_async
from conveyor.sim.state import SimState

FILES_PATH = "/files"


Where = web.Request | str
"""A request (the origin it came to) or an origin kept from one (for callbacks sent later)."""


def origin(where: Where, state: SimState) -> str:
    """Where clients reach this simulator: ``public_url`` or the origin they called."""
    if state.config.public_url:
        return state.config.public_url
    return where if isinstance(where, str) else str(where.url.origin())


def file_url(where: Where, state: SimState, file_id: str) -> str:
    return f"{origin(where, state)}{FILES_PATH}/{file_id}"


async def file_reference(where: Where, state: SimState, file_id: str, encoding: Encoding) -> str:
    """The file as a URL, a ``data:`` URL or bare base64, per ``encoding``."""
    url = file_url(where, state, file_id)
    spec = state.file(file_id)
    if encoding == "url" or spec is None:
        return url
    return encode(await render_async(spec), spec.mime_type, encoding, url)


async def download(request: web.Request, state: SimState) -> web.Response:
    file_id = request.match_info["file_id"]
    spec = state.file(file_id)
    if spec is None:
        return web.json_response({"detail": f"no file {file_id}"}, status=404)
    data = await render_async(spec)
    if request.method == "GET":
        state.record_download(file_id)
    return web.Response(
        body=data,
        content_type=spec.mime_type,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'inline; filename="{file_id}"',
        },
    )
