"""Builds the model registry of a process: local engines plus declarative HTTP models."""

from __future__ import annotations

import logging

import aiohttp

from conveyor.config import Settings
from conveyor.providers.base import CpuRunner, ModelAdapter
from conveyor.providers.registry import ModelRegistry

log = logging.getLogger(__name__)


def build_model_registry(
    settings: Settings, *, http: aiohttp.ClientSession, cpu: CpuRunner
) -> ModelRegistry:
    adapters: list[ModelAdapter] = []
    try:
        from conveyor.providers.local import local_adapters
    except ImportError:  # the local engines package is optional at this stage
        log.warning("local engines not installed")
    else:
        adapters.extend(local_adapters(cpu))
    return ModelRegistry(adapters)
