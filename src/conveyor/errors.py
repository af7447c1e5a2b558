"""The one error tree every layer raises, the engine acts on and one handler renders.

    ConveyorError               message, status_code, code, retryable, retry_after, details
    ├── BadRequest              400
    ├── ValidationFailed        422
    ├── Unauthorized            401
    ├── Forbidden               403
    ├── NotFound                404
    ├── Conflict                409
    ├── PayloadTooLarge         413
    ├── UnsupportedMediaType    415
    ├── TooManyRequests         429
    ├── ServiceUnavailable      503  retryable
    ├── ConfigurationError      500  settings that cannot work; raised at start-up
    ├── ItemFailed              422  one item cannot succeed (bad input, a whole chain failed)
    ├── TemporaryFailure        503  retryable: the work may succeed later (transient failures)
    ├── ProviderError           conveyor.providers.errors: remote providers and local engines
    ├── FetchError              conveyor.net.errors: fetching a URL (SSRF policy, size, type)
    ├── StorageError            conveyor.storage.base
    └── ImageRejected           conveyor.content.images

``status_code`` and ``code`` say how an API answers it: ``{"error": CODE, "message": ...,
"code": status}``, rendered in one place (``conveyor.core.http``). ``retryable`` and
``retry_after`` say what the engine does with it: a retryable error may succeed if the same
work runs again later (after ``retry_after`` seconds when the cause said so); anything else is
final for that work. The work queue reads only those two attributes (its own small protocol,
``conveyor.queue.errors``), so it never imports this module.
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """Base of every error Conveyor raises on purpose."""

    status_code: int = 500
    code: str = "INTERNAL_ERROR"
    retryable: bool = False
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
        if retry_after is not None:
            self.retry_after = retry_after
        self.details = details or {}


class BadRequest(ConveyorError):
    status_code = 400
    code = "BAD_REQUEST"


class ValidationFailed(ConveyorError):
    status_code = 422
    code = "VALIDATION_ERROR"


class Unauthorized(ConveyorError):
    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(ConveyorError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(ConveyorError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(ConveyorError):
    status_code = 409
    code = "CONFLICT"


class PayloadTooLarge(ConveyorError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ConveyorError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class TooManyRequests(ConveyorError):
    status_code = 429
    code = "TOO_MANY_REQUESTS"


class ServiceUnavailable(ConveyorError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    retryable = True


class ConfigurationError(ConveyorError):
    """Settings that cannot work; raised at start-up, never for a request."""

    status_code = 500
    code = "CONFIGURATION_ERROR"


class ItemFailed(ConveyorError):
    """One item cannot succeed: its input is bad, or every model of a step failed for good."""

    status_code = 422
    code = "ITEM_FAILED"


class TemporaryFailure(ConveyorError):
    """The work failed for reasons that may pass (every model busy, a timeout): run it later."""

    status_code = 503
    code = "TEMPORARY_FAILURE"
    retryable = True
