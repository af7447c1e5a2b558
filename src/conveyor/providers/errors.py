"""Provider errors (remote providers and local engines), split by what the caller does next.

    ProviderError                ConveyorError, 502
    ├── RetryableProviderError   retryable: timeouts, connection errors, 429, 5xx, 404 while a
    │   │                        task is fresh, a local engine's worker process that died
    │   └── RateLimited          429 with the provider's Retry-After (``retry_after``)
    ├── PermanentProviderError   4xx, 401/402/403, a failed task, an answer that cannot be read,
    │   │                        an input the model refuses
    │   └── ModelUnavailable     no key, no engine, no package: never worth retrying here
    └── ProviderCancelled        the job was cancelled while the call was running

Retryable errors may succeed on the same model later; permanent ones move a step down its
fallback chain. Every error carries the provider's own message when there is one. The
``retryable``/``retry_after`` attributes come from ``ConveyorError``: nothing else decides.
"""

from __future__ import annotations

from conveyor.errors import ConveyorError


class ProviderError(ConveyorError):
    status_code = 502
    code = "PROVIDER_ERROR"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        http_status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.provider = provider
        self.http_status = http_status


class RetryableProviderError(ProviderError):
    code = "PROVIDER_RETRYABLE"
    retryable = True


class RateLimited(RetryableProviderError):
    code = "PROVIDER_RATE_LIMITED"


class PermanentProviderError(ProviderError):
    code = "PROVIDER_FAILED"


class ModelUnavailable(PermanentProviderError):
    code = "MODEL_UNAVAILABLE"


class ProviderCancelled(ProviderError):
    code = "CANCELLED"
