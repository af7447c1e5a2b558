"""The error tree every layer raises and one handler renders.

``ConveyorError`` carries the HTTP status and a stable machine-readable code, so the API
turns any of them into ``{"error": CODE, "message": ..., "code": status}`` without
knowing where it came from. Subclasses exist for the statuses clients act on.
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """Base of every error Conveyor raises on purpose."""

    status_code: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
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


class ConfigurationError(ConveyorError):
    """Settings that cannot work; raised at start-up, never for a request."""

    status_code = 500
    code = "CONFIGURATION_ERROR"
