"""Declarative HTTP providers: a YAML spec per provider, one adapter per model.

``load_specs`` reads and validates the specs, ``build_http_adapters`` turns them into
``ModelAdapter``s sharing one aiohttp session and one ``ProviderLimits`` per provider.
The spec format is in ``conveyor.providers.spec`` and ``docs/providers.md``.
"""

from __future__ import annotations

from conveyor.providers.http.adapter import HttpModelAdapter
from conveyor.providers.http.loader import (
    SHIPPED_SPECS,
    HttpOverrides,
    build_http_adapters,
    load_specs,
    read_specs,
    resolve_api_key,
    resolve_base_url,
)
from conveyor.providers.http.transport import ProviderAnswer, ProviderCaller, UnreadableAnswer

__all__ = [
    "SHIPPED_SPECS",
    "HttpModelAdapter",
    "HttpOverrides",
    "ProviderAnswer",
    "ProviderCaller",
    "UnreadableAnswer",
    "build_http_adapters",
    "load_specs",
    "read_specs",
    "resolve_api_key",
    "resolve_base_url",
]
