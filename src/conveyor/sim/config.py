"""Settings of one simulator run, changeable while it runs.

``Behaviour`` is everything that decides how a task or a request goes (latency, failure and
fault rates, result shapes). ``SimConfig`` is a ``Behaviour`` — its fields are the defaults —
plus run-wide settings (seed, keys, caps) and two override tables: ``protocols`` (keyed by
protocol name, e.g. ``"genapi"``) and ``models`` (keyed by ``"{protocol}/{model}"``, e.g.
``"genapi/z-image"`` or ``"fal/fal-ai/birefnet"``). The behaviour of one request is the
defaults, then its protocol's overrides, then its model's. Updates are JSON merge patches
(RFC 7396: objects merge, ``null`` removes a key so it falls back to its default).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

PROTOCOLS: tuple[str, ...] = ("genapi", "kie", "replicate", "fal", "openai")

Encoding = Literal["url", "data_url", "base64"]
KeyVerdict = Literal["ok", "unknown", "no_balance", "forbidden"]


class Behaviour(BaseModel):
    """How tasks and requests behave; may differ per protocol and per model."""

    model_config = ConfigDict(extra="forbid")

    # A task finishes uniform(latency_min, latency_max) * latency_scale seconds after submit.
    latency_min: float = Field(1.0, ge=0)
    latency_max: float = Field(3.0, ge=0)
    latency_scale: float = Field(1.0, ge=0)
    # Share of tasks that end failed (async protocols) or calls that fail (OpenAI).
    failure_rate: float = Field(0.0, ge=0, le=1)
    failure_message: str = "simulated generation failure"
    # Share of requests answered 500, and of requests that hang for hang_seconds, then 504.
    http_500_rate: float = Field(0.0, ge=0, le=1)
    timeout_rate: float = Field(0.0, ge=0, le=1)
    hang_seconds: float = Field(120.0, ge=0)
    # The first N polls of every task answer 404, as gen-api does while a task is fresh.
    not_found_polls: int = Field(0, ge=0)
    # 429 bursts: after every `rate_limit_every` admitted requests of a protocol, the next
    # `rate_limit_burst` get 429 with Retry-After. 0 turns it off.
    rate_limit_every: int = Field(0, ge=0)
    rate_limit_burst: int = Field(1, ge=1)
    retry_after_seconds: int = Field(1, ge=0)
    # Result shapes: gen-api's `result` list or `full_response` objects; how files are given.
    result_field: Literal["result", "full_response"] = "result"
    encoding: Encoding = "url"
    replicate_output: Literal["list", "string"] = "list"
    # Kie answers some errors with HTTP 200 and the real status in the body's `code`.
    kie_errors_as_http_200: bool = False
    # Share of Kie tasks that look fine (waiting, queuing, generating) and are then refused
    # by content moderation: state fail, failCode 400.
    kie_moderation_rate: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _latency_range(self) -> Behaviour:
        if self.latency_max < self.latency_min:
            raise ValueError("latency_max must be >= latency_min")
        return self


BEHAVIOUR_FIELDS: frozenset[str] = frozenset(Behaviour.model_fields)


class SimConfig(Behaviour):
    """One simulator run's settings: behaviour defaults, keys, caps and overrides."""

    seed: int = 0
    api_keys: list[str] = Field(default_factory=lambda: ["sim-key"])
    no_balance_keys: list[str] = Field(default_factory=lambda: ["sim-no-balance"])
    forbidden_keys: list[str] = Field(default_factory=lambda: ["sim-forbidden"])
    # Generated images never exceed this side (keeps benchmarks cheap); aspect is kept.
    max_image_side: int = Field(1024, ge=8, le=4096)
    max_outputs: int = Field(4, ge=1, le=16)
    max_audio_seconds: float = Field(10.0, gt=0, le=120)
    # Origin used in file and status URLs; None means the origin the request came to.
    public_url: str | None = None
    # Secrets the simulator signs callbacks with, as the providers do once an account sets
    # one (None: callbacks go unsigned): Kie's webhookHmacKey, Replicate's whsec_ secret.
    kie_webhook_hmac_key: str | None = None
    replicate_webhook_secret: str | None = Field(None, pattern=r"^whsec_[A-Za-z0-9+/=]+$")
    openai_models: list[str] = Field(
        default_factory=lambda: [
            "gpt-4o-mini",
            "gpt-4o",
            "gpt-4.1-mini",
            "gpt-image-1",
            "dall-e-3",
            "tts-1",
            "gpt-4o-mini-tts",
        ]
    )
    protocols: dict[str, dict[str, Any]] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _behaviour_cache: dict[tuple[str, str | None], Behaviour] = PrivateAttr(default_factory=dict)

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(PROTOCOLS))
        if unknown:
            raise ValueError(f"unknown protocol(s) {unknown}; known: {list(PROTOCOLS)}")
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _overrides_are_behaviour(self) -> SimConfig:
        # Validate every override now, so a bad patch is refused instead of failing a request.
        for table_name, table in (("protocols", self.protocols), ("models", self.models)):
            for name, override in table.items():
                unknown = sorted(set(override) - BEHAVIOUR_FIELDS)
                if unknown:
                    raise ValueError(f"{table_name}[{name!r}]: not behaviour settings: {unknown}")
                Behaviour.model_validate({**self._defaults(), **override})
        return self

    def _defaults(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in BEHAVIOUR_FIELDS}

    def behaviour_for(self, protocol: str, model: str | None = None) -> Behaviour:
        """The behaviour of one request: defaults, then protocol, then model overrides."""
        key = (protocol, model)
        cached = self._behaviour_cache.get(key)
        if cached is None:
            merged = self._defaults()
            merged.update(self.protocols.get(protocol, {}))
            if model is not None:
                merged.update(self.models.get(f"{protocol}/{model}", {}))
            cached = self._behaviour_cache[key] = Behaviour.model_validate(merged)
        return cached

    def key_verdict(self, key: str | None) -> KeyVerdict:
        if key is None:
            return "unknown"
        if key in self.no_balance_keys:
            return "no_balance"
        if key in self.forbidden_keys:
            return "forbidden"
        return "ok" if key in self.api_keys else "unknown"

    def merged(self, patch: dict[str, Any]) -> SimConfig:
        """A new config with ``patch`` applied as a JSON merge patch (RFC 7396)."""
        return SimConfig.model_validate(merge_patch(self.model_dump(), patch))


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396: nested objects merge, ``None`` deletes, anything else replaces."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = merge_patch(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = value
    return result
