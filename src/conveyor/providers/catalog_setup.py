"""Builds the model registry of a process: local engines plus declarative HTTP models."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp

from conveyor.config import Settings
from conveyor.providers.base import CpuRunner, ModelAdapter
from conveyor.providers.http import HttpOverrides, build_http_adapters, read_specs
from conveyor.providers.registry import ModelRegistry
from conveyor.providers.spec import ProviderSpec

log = logging.getLogger(__name__)


def http_overrides(settings: Settings) -> HttpOverrides:
    return HttpOverrides(simulate=settings.simulate, simulator_url=settings.simulator_url)


def build_model_registry(
    settings: Settings,
    *,
    http: aiohttp.ClientSession,
    cpu: CpuRunner,
    extra_specs: Sequence[ProviderSpec] = (),
) -> ModelRegistry:
    """Shipped specs, then operator-added specs (which replace shipped ones by name)."""
    adapters: list[ModelAdapter] = []
    try:
        from conveyor.providers.local import local_adapters
    except ImportError:  # pragma: no cover - the package ships with Conveyor
        log.warning("local engines are not installed")
    else:
        adapters.extend(local_adapters(cpu))
    specs = {spec.name: spec for spec in read_specs()}
    specs.update({spec.name: spec for spec in extra_specs})
    adapters.extend(build_http_adapters(list(specs.values()), http, http_overrides(settings)))
    return ModelRegistry(adapters)
