"""Loading provider specs and building one adapter per model.

Where a provider's base URL and key come from, first match wins:

* base URL: ``HttpOverrides.base_urls[name]``; in simulate mode the simulator URL plus the
  spec's ``simulate_path``; the environment variable named by ``base_url_env``; the spec.
* key: in simulate mode the simulator's key; ``HttpOverrides.keys[name]`` (stored in the
  database); the first environment variable of ``auth.key_env`` that is set.

Each provider gets one ``ProviderLimits`` shared by all its models, so the in-flight cap,
the rate and the circuit are per provider, as the provider sees them.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from conveyor.core.clock import Clock
from conveyor.providers.http.adapter import HttpModelAdapter
from conveyor.providers.limits import ProviderLimits
from conveyor.providers.spec import ProviderSpec, ProviderSpecError, load_spec_file

__all__ = [
    "SHIPPED_SPECS",
    "HttpOverrides",
    "build_http_adapters",
    "load_specs",
    "read_specs",
    "resolve_api_key",
    "resolve_base_url",
]

SHIPPED_SPECS = Path(__file__).resolve().parent.parent / "specs"


@dataclass(frozen=True, slots=True)
class HttpOverrides:
    """What settings and the database say about providers, beyond their specs."""

    simulate: bool = False
    simulator_url: str = "http://127.0.0.1:8100"
    # The key every simulated provider accepts (the simulator's default ``api_keys``).
    simulator_key: str = "sim-key"
    keys: Mapping[str, str] = field(default_factory=dict)
    base_urls: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] | None = None

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self.env is None else self.env


async def load_specs(directory: str | Path = SHIPPED_SPECS) -> list[ProviderSpec]:
    """Every ``*.yaml``/``*.yml`` spec in ``directory``, validated, sorted by name.

    Raises ``ProviderSpecError`` for the first invalid file (with all of its faults), or
    when two files declare the same provider or model. The files are read off the loop.
    """
    return await asyncio.to_thread(read_specs, directory)


def read_specs(directory: str | Path = SHIPPED_SPECS) -> list[ProviderSpec]:
    """``load_specs`` for synchronous start-up code (it blocks on the file system)."""
    files = sorted([*Path(directory).glob("*.yaml"), *Path(directory).glob("*.yml")])
    specs = [load_spec_file(f) for f in files]
    providers: dict[str, str] = {}
    models: dict[str, str] = {}
    for spec, file in zip(specs, files, strict=True):
        if spec.name in providers:
            raise ProviderSpecError(
                file.name, [f"provider {spec.name!r} is also defined in {providers[spec.name]}"]
            )
        providers[spec.name] = file.name
        for model in spec.models:
            if model.id in models:
                raise ProviderSpecError(
                    file.name, [f"model {model.id!r} is also defined in {models[model.id]}"]
                )
            models[model.id] = file.name
    return sorted(specs, key=lambda s: s.name)


def resolve_base_url(spec: ProviderSpec, overrides: HttpOverrides) -> str:
    if spec.name in overrides.base_urls:
        return overrides.base_urls[spec.name].rstrip("/")
    if overrides.simulate:
        return overrides.simulator_url.rstrip("/") + (spec.simulate_path or "")
    if spec.base_url_env and overrides.environ.get(spec.base_url_env):
        return overrides.environ[spec.base_url_env].rstrip("/")
    return spec.base_url.rstrip("/")


def resolve_api_key(spec: ProviderSpec, overrides: HttpOverrides) -> str | None:
    if overrides.simulate:
        # Real keys never go to the simulator, which would refuse them anyway.
        return overrides.simulator_key
    if overrides.keys.get(spec.name):
        return overrides.keys[spec.name]
    for name in spec.auth.key_env:
        if overrides.environ.get(name):
            return overrides.environ[name]
    return None


def build_http_adapters(
    specs: Iterable[ProviderSpec],
    session: aiohttp.ClientSession,
    overrides: HttpOverrides | None = None,
    *,
    limits: Mapping[str, ProviderLimits] | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> list[HttpModelAdapter]:
    """One adapter per model of every spec; providers without a key are still listed
    (their ``availability()`` says which variable to set)."""
    settings = overrides or HttpOverrides()
    shared = dict(limits or {})
    adapters: list[HttpModelAdapter] = []
    for spec in specs:
        provider_limits = shared.get(spec.name)
        if provider_limits is None:
            provider_limits = ProviderLimits.from_spec(spec, clock=clock)
            shared[spec.name] = provider_limits
        base_url = resolve_base_url(spec, settings)
        api_key = resolve_api_key(spec, settings)
        for model in spec.models:
            adapters.append(
                HttpModelAdapter(
                    spec,
                    model,
                    session,
                    provider_limits,
                    api_key=api_key,
                    base_url=base_url,
                    env=settings.environ,
                    rng=rng,
                    simulated=settings.simulate,
                )
            )
    return adapters
