"""The simulator as one aiohttp application: five protocols, files, and a control API.

Each protocol lives under its own path prefix, which stands for the provider's origin: a
provider URL becomes a simulator URL by swapping ``https://api.gen-api.ru`` for
``{sim}/genapi`` (and so on, see ``ORIGIN_PATHS``) and keeping the path. The prefixes keep
protocols from colliding (Replicate's and OpenAI's ``/v1``, gen-api's and Kie's
``/api/v1``). A request to no route at all is a client calling a wrong endpoint: it is
answered 404/405 in that protocol's error format and counted. The control API lives under
``/_sim``: ``GET/POST /_sim/config`` (read / JSON-merge-patch the settings), ``POST
/_sim/reset`` (forget tasks and counters, back to the starting settings), ``GET
/_sim/counters`` and ``GET /_sim/callbacks`` (every callback delivered to a client).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from conveyor.core.clock import Clock, SystemClock
from conveyor.sim import fal, genapi, kie, openai_compat, replicate
from conveyor.sim.config import SimConfig
from conveyor.sim.files import FILES_PATH, download, origin
from conveyor.sim.gate import SimHTTPError, read_json_object
from conveyor.sim.state import SIM_STATE, SimState

_PROTOCOL_MODULES: tuple[ModuleType, ...] = (genapi, kie, replicate, fal, openai_compat)
ORIGIN_PATHS: dict[str, str] = {module.PROTOCOL: module.ORIGIN_PATH for module in _PROTOCOL_MODULES}
"""Protocol → the path prefix that stands for its provider's origin."""
PROVIDER_ORIGINS: dict[str, str] = {
    "genapi": "https://api.gen-api.ru",
    "kie": "https://api.kie.ai",
    "replicate": "https://api.replicate.com",
    "fal": "https://queue.fal.run",
    "openai": "https://api.openai.com",
}
_ErrorRenderer = Callable[[SimHTTPError, SimState], web.Response]
_RENDERERS: dict[str, _ErrorRenderer] = {
    module.PROTOCOL: module.render_error for module in _PROTOCOL_MODULES
}
_CONTROL = "/_sim"


def _protocol_of(path: str) -> str:
    for protocol, prefix in ORIGIN_PATHS.items():
        if path == prefix or path.startswith(f"{prefix}/"):
            return protocol
    return ""


def _render(error: SimHTTPError, state: SimState) -> web.Response:
    renderer = _RENDERERS.get(error.protocol)
    if renderer is not None:
        return renderer(error, state)
    return web.json_response(
        {"error": error.code, "message": error.message}, status=error.status, headers=error.headers
    )


@web.middleware
async def _errors_and_wrong_endpoints(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[SIM_STATE]
    unmatched = request.match_info.http_exception
    if unmatched is not None:
        state.counters.wrong_endpoints[f"{request.method} {request.path}"] += 1
        error = SimHTTPError(
            unmatched.status,
            f"no such endpoint: {request.method} {request.path}",
            code="wrong_endpoint",
            protocol=_protocol_of(request.path),
        )
        return _render(error, state)
    try:
        return await handler(request)
    except SimHTTPError as error:
        return _render(error, state)


async def _get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_STATE].config.model_dump(mode="json"))


async def _patch_config(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    patch = await read_json_object(request, "")
    try:
        state.config = state.config.merged(patch)
    except ValidationError as error:
        return web.json_response(
            {
                "error": "invalid_config",
                "details": error.errors(include_url=False, include_context=False),
            },
            status=400,
        )
    return web.json_response(state.config.model_dump(mode="json"))


async def _reset(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    state.reset()
    return web.json_response(state.config.model_dump(mode="json"))


async def _counters(request: web.Request) -> web.Response:
    # ?tasks=0 leaves out per-task timings, which are large after a benchmark run.
    include_tasks = request.query.get("tasks", "1") not in ("0", "false", "no")
    return web.json_response(request.app[SIM_STATE].snapshot(include_tasks=include_tasks))


async def _index(request: web.Request) -> web.Response:
    here = origin(request, request.app[SIM_STATE])
    return web.json_response(
        {
            "simulator": "conveyor-sim",
            "base_urls": describe_base_urls(here),
            "stands_for": PROVIDER_ORIGINS,
            "control": {
                "index": f"{here}{_CONTROL}",
                "config": f"{here}{_CONTROL}/config",
                "reset": f"{here}{_CONTROL}/reset",
                "counters": f"{here}{_CONTROL}/counters",
                "callbacks": f"{here}{_CONTROL}/callbacks",
            },
        }
    )


async def _callbacks(request: web.Request) -> web.Response:
    deliveries = request.app[SIM_STATE].deliveries
    return web.json_response([delivery.to_json() for delivery in deliveries])


async def _download(request: web.Request) -> web.Response:
    return await download(request, request.app[SIM_STATE])


async def _release_hangs(app: web.Application) -> None:
    app[SIM_STATE].release_hangs()
    app[SIM_STATE].stop_deliveries()


def create_sim_app(
    config: SimConfig | None = None,
    *,
    clock: Clock | None = None,
) -> web.Application:
    """The simulator app on ``clock``: the system clock unless given, a ``ManualClock`` in tests."""
    # Chat requests carry base64 images; allow bodies as large as providers do.
    app = web.Application(middlewares=[_errors_and_wrong_endpoints], client_max_size=64 * 2**20)
    app[SIM_STATE] = SimState(config or SimConfig(), clock=clock or SystemClock())
    # The index at the root too: the first URL a person opens after `conveyor sim`.
    app.router.add_get("/", _index)
    app.router.add_get(f"{_CONTROL}", _index)
    app.router.add_get(f"{_CONTROL}/config", _get_config)
    app.router.add_post(f"{_CONTROL}/config", _patch_config)
    app.router.add_post(f"{_CONTROL}/reset", _reset)
    app.router.add_get(f"{_CONTROL}/counters", _counters)
    app.router.add_get(f"{_CONTROL}/callbacks", _callbacks)
    app.router.add_get(f"{FILES_PATH}/{{file_id}}", _download)
    for module in _PROTOCOL_MODULES:
        module.add_routes(app)
    app.on_shutdown.append(_release_hangs)
    return app


def describe_base_urls(origin: str) -> dict[str, str]:
    """Protocol → simulator base URL, for a simulator reachable at ``origin``."""
    return {name: f"{origin.rstrip('/')}{path}" for name, path in ORIGIN_PATHS.items()}
