"""Provider errors, split by what the caller should do next.

    ProviderError
    ├── RetryableProviderError   timeouts, connection errors, 429, 5xx, 404 while a task is fresh
    │   └── RateLimited          429 with the provider's Retry-After
    ├── PermanentProviderError   4xx, 401/402/403, a failed task, an answer that cannot be read
    │   └── ModelUnavailable     no key, no engine, no package: never worth retrying here
    └── ProviderCancelled        the job was cancelled while the call was running

Retryable errors may succeed on the same model later; permanent ones move the step down its
fallback chain. Every error carries the provider's own message when there is one.
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
    ) -> None:
        super().__init__(message, code=code)
        self.provider = provider
        self.http_status = http_status


class RetryableProviderError(ProviderError):
    code = "PROVIDER_RETRYABLE"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, http_status=http_status, code=code)
        self.retry_after = retry_after


class RateLimited(RetryableProviderError):
    code = "PROVIDER_RATE_LIMITED"


class PermanentProviderError(ProviderError):
    code = "PROVIDER_FAILED"


class ModelUnavailable(PermanentProviderError):
    code = "MODEL_UNAVAILABLE"


class ProviderCancelled(ProviderError):
    code = "CANCELLED"
