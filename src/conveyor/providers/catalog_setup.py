"""Builds the model registry of a process: local engines plus declarative HTTP models."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp

from conveyor.config import Settings
from conveyor.core.clock import Clock
from conveyor.providers.base import CpuRunner, ModelAdapter
from conveyor.providers.http import HttpOverrides, build_http_adapters, read_specs
from conveyor.providers.local import local_adapters
from conveyor.providers.local.catalogue import local_models
from conveyor.providers.local.engine import EngineOptions
from conveyor.providers.registry import ModelRegistry
from conveyor.providers.spec import ProviderSpec

log = logging.getLogger(__name__)


def engine_options(settings: Settings) -> EngineOptions:
    return EngineOptions(
        max_image_pixels=settings.engine_max_image_pixels,
        tts_max_chars=settings.engine_tts_max_chars,
        onnx_threads=settings.engine_onnx_threads,
        program_timeout=settings.engine_program_timeout,
    )


def cpu_limits(settings: Settings) -> dict[str, int]:
    """Per-engine concurrency in the process pool, so one engine can't take every process."""
    return {spec.limiter: spec.concurrency for spec in local_models(engine_options(settings))}


def http_overrides(settings: Settings) -> HttpOverrides:
    return HttpOverrides(simulate=settings.simulate, simulator_url=settings.simulator_url)


def build_model_registry(
    settings: Settings,
    *,
    http: aiohttp.ClientSession,
    cpu: CpuRunner,
    extra_specs: Sequence[ProviderSpec] = (),
    clock: Clock | None = None,
) -> ModelRegistry:
    """Shipped specs, then operator-added specs (which replace shipped ones by name)."""
    adapters: list[ModelAdapter] = list(local_adapters(cpu, options=engine_options(settings)))
    specs = {spec.name: spec for spec in read_specs()}
    specs.update({spec.name: spec for spec in extra_specs})
    adapters.extend(
        build_http_adapters(list(specs.values()), http, http_overrides(settings), clock=clock)
    )
    return ModelRegistry(adapters)
