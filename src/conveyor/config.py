"""All settings in one place: environment variables with the ``CONVEYOR_`` prefix.

An optional env file (``CONVEYOR_ENV_FILE``, default ``.env``) is read too. Defaults are
the single-machine setup: SQLite in ``./data`` and files in ``./data/assets``.
"""

from __future__ import annotations

import ipaddress
import os
import string
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.errors import ConfigurationError

DEFAULT_MEDIA_IMAGE_PROMPT = (
    'A clear, simple picture that shows the meaning of the {language} word "{word}": one '
    "single object or scene, centred, realistic colours, on a plain light background. "
    "No text, no letters, no words, no numbers, no captions, no labels, no watermark."
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONVEYOR_",
        env_file=os.environ.get("CONVEYOR_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: Literal["dev", "prod", "test"] = "dev"
    data_dir: Path = Path("data")
    database_url: str = ""
    database_pool_size: int = Field(10, ge=1, le=200)

    # Storage
    storage: Literal["local", "s3", "memory"] = "local"
    storage_path: Path | None = None
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # The bucket's public base URL, when its objects are readable without a signature
    # (e.g. "https://my-bucket.s3.example.com"): box files are linked there, not presigned.
    s3_public_url: str = Field("", pattern=r"^(https?://\S+)?$")

    # HTTP server
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    max_json_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_items_per_job: int = Field(10_000, ge=1)
    max_wait_seconds: float = Field(300.0, ge=0, le=300)

    # Queue and workers
    worker_concurrency: int = Field(2000, ge=1)
    claim_batch_size: int = Field(50, ge=1, le=1000)
    # Share of a worker's slots kept for clients holding fewer tasks than that (fair share).
    worker_fair_reserve: float = Field(0.1, ge=0.0, le=0.5)
    queue_poll_interval: float = Field(1.0, gt=0)
    heartbeat_interval: float = Field(5.0, gt=0)
    heartbeat_timeout: float = Field(30.0, gt=0)
    sweep_interval: float = Field(15.0, gt=0)
    shutdown_grace: float = Field(20.0, ge=0)
    task_max_attempts: int = Field(5, ge=1)
    retry_base_delay: float = Field(2.0, gt=0)
    retry_max_delay: float = Field(300.0, gt=0)
    process_pool_size: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=0)
    item_timeout: float = Field(3600.0, gt=0)

    # Providers and outbound HTTP
    simulate: bool = False
    simulator_url: str = "http://127.0.0.1:8100"
    allow_private_urls: bool = False
    # Narrow exceptions to the SSRF policy: hosts ("cdn.internal", ".corp" for subdomains)
    # and networks ("10.20.0.0/16") Conveyor may fetch from although they are private.
    allowed_fetch_hosts: list[str] = Field(default_factory=list)
    allowed_fetch_networks: list[str] = Field(default_factory=list)
    http_pool_size: int = Field(300, ge=1)
    # Separate pools: a client's slow input URLs never hold the connections provider calls
    # and webhooks need.
    fetch_pool_size: int = Field(100, ge=1)
    webhook_pool_size: int = Field(20, ge=1)
    fetch_deadline: float = Field(60.0, gt=0, le=3600)
    fetch_max_bytes: int = Field(25 * 1024 * 1024, ge=1024)

    # Security
    # Signs webhooks and time-limited asset links; required outside development.
    secret_key: str = ""
    insecure: bool = False

    retention_days: int = Field(30, ge=1)

    # Local engines
    engine_max_image_pixels: int = Field(64_000_000, ge=1)
    engine_tts_max_chars: int = Field(5_000, ge=1)
    engine_onnx_threads: int = Field(1, ge=0)
    engine_program_timeout: float = Field(60.0, gt=0)

    # Vehicle-damage descriptions (recipe ``vehicle-damage``, seed 000 API under /api/v1).
    # Model chains: the first available model is tried first, the next on failure.
    describe_models: list[str] = Field(default_factory=lambda: ["openai/vision"], min_length=1)
    translate_models: list[str] = Field(default_factory=lambda: ["openai/translate"], min_length=1)
    # Seed-000 clients: JSON object name → shared HMAC key, e.g. '{"acme": "<secret>"}'.
    # Each name is a Conveyor client (its jobs are its own); keys are never stored.
    descriptions_clients: dict[str, SecretStr] = Field(default_factory=dict)
    # Sync mode: translations share this budget; the whole answer waits at most
    # descriptions_sync_wait (a little under the seed clients' 300 s read timeout).
    descriptions_translation_budget: float = Field(45.0, gt=0, le=300)
    descriptions_sync_wait: float = Field(290.0, gt=0, le=300)
    # The seed's signature covers only ``lots``: the same signed lots start at most one job
    # per window (0 turns the replay guard off). See docs/compat-descriptions.md.
    descriptions_replay_window: float = Field(600.0, ge=0)

    # Product photos (recipe ``product-photo``, seed 004 API). Analysis: the first model that
    # answers. Background: the model a request names (else ``product_background_model``),
    # then on failure the fallbacks after it, in order.
    product_analysis_models: list[str] = Field(
        default_factory=lambda: ["openai/vision", "local/analyze"], min_length=1
    )
    product_background_model: str = Field("fal/flux-kontext-lora-v2", min_length=1)
    product_background_fallbacks: list[str] = Field(
        default_factory=lambda: [
            "fal/birefnet",
            "replicate/remove-background",
            "local/u2netp",
            "local/grabcut",
        ]
    )
    # Seed-004 API: X-Forwarded-For names the client only when the connection comes from one
    # of these proxies (addresses or networks, e.g. "10.0.0.5", "172.18.0.0/16").
    photos_trusted_proxies: list[str] = Field(default_factory=list)
    # Seed 004's limits: requests at once per client address, seconds of work per photo
    # (waits for a free engine or provider slot not counted), days its history is kept
    # (whatever ``retention_days`` says for other jobs).
    photos_concurrent_requests: int = Field(10, ge=1, le=10_000)
    photos_time_limit: float = Field(120.0, gt=0, le=86_400)
    photos_retention_days: int = Field(30, ge=1)
    # One ``/process_batch`` request: at most this many photos and bytes (each photo ≤ 10 MB).
    photos_batch_max_files: int = Field(100, ge=1, le=10_000)
    photos_batch_max_bytes: int = Field(200 * 1024 * 1024, ge=11 * 1024 * 1024)

    @field_validator("photos_trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"not an IP address or network: {entry!r}") from exc
        return [entry.strip() for entry in value]

    # Word media (recipe ``word-media``, seed 002 API under /api/media). Image and audio
    # model chains: the first available model is tried first, the next on failure.
    media_image_models: list[str] = Field(
        default_factory=lambda: [
            "genapi/z-image",
            "openai/image",
            "replicate/flux-schnell",
            "kie/seedream-4.5",
        ],
        min_length=1,
        max_length=10,
    )
    media_audio_models: list[str] = Field(
        default_factory=lambda: ["openai/speech", "local/tts"], min_length=1, max_length=10
    )
    # The picture of a word: ``{word}`` and ``{language}`` (its English name) are filled in.
    media_image_prompt: str = Field(DEFAULT_MEDIA_IMAGE_PROMPT, min_length=1, max_length=4000)
    # One word (generate-image, generate-audio) is answered in the call if done this soon.
    media_sync_wait: float = Field(60.0, gt=0, le=120)
    # How long the signed file links in media answers stay valid.
    media_link_ttl: int = Field(86_400, ge=60, le=30 * 86_400)

    @field_validator("media_image_prompt")
    @classmethod
    def _prompt_placeholders(cls, value: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"media image prompt: {exc}") from exc
        if "word" not in fields:
            raise ValueError("the media image prompt must contain {word}")
        unknown = sorted(fields - {"word", "language"})
        if unknown:
            raise ValueError(
                f"the media image prompt may use only {{word}} and {{language}}, not {unknown}"
            )
        return value

    @field_validator("descriptions_clients")
    @classmethod
    def _usable_client_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, key in value.items():
            if not name.strip() or len(name) > 100:
                raise ValueError("descriptions client names must be 1-100 characters")
            if not key.get_secret_value():
                raise ValueError(f"descriptions client {name!r} has an empty shared key")
        return value

    @model_validator(mode="after")
    def _strong_client_keys_in_prod(self) -> Settings:
        short = [n for n, k in self.descriptions_clients.items() if len(k.get_secret_value()) < 16]
        if self.env == "prod" and short:
            raise ConfigurationError(
                f"CONVEYOR_DESCRIPTIONS_CLIENTS: shared keys of {', '.join(short)} are shorter "
                "than 16 characters (signatures would be guessable)"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> Settings:
        if self.env == "prod" and len(self.secret_key) < 32:
            raise ConfigurationError(
                "CONVEYOR_SECRET_KEY (32+ characters) must be set when CONVEYOR_ENV=prod: "
                "webhook signatures and asset links would otherwise be forgeable"
            )
        if self.storage == "s3" and not self.s3_bucket:
            raise ConfigurationError("CONVEYOR_S3_BUCKET is required when CONVEYOR_STORAGE=s3")
        if self.s3_public_url and self.storage != "s3":
            raise ConfigurationError("CONVEYOR_S3_PUBLIC_URL needs CONVEYOR_STORAGE=s3")
        return self

    @property
    def open_mode_allowed(self) -> bool:
        """Whether requests without a key may be served while no key exists: only on a
        loopback address, unless the operator said ``--insecure``."""
        if self.insecure or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'conveyor.db').as_posix()}"

    @property
    def resolved_storage_path(self) -> Path:
        return self.storage_path or (self.data_dir / "assets")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process; tests build their own ``Settings`` instead."""
    return Settings()
