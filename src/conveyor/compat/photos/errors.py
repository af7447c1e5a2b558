"""Seed 004's error body: ``{"error": "INVALID_FILE_FORMAT", "message": "...", "code": 4001}``.

The seed numbers its errors itself and puts that number where Conveyor's other APIs put the
HTTP status. ``PhotoApiError`` is a ``ConveyorError`` (the HTTP status and the message
travel as everywhere else) that also carries the seed's number; ``seed_error_body`` renders
any ``ConveyorError`` in the seed's shape, giving Conveyor's own errors the nearest seed
number, so every answer of the seed's endpoints has one shape.

The seed's numbers and the ones it leaves out, chosen here (``docs/decisions.md``)::

    4000  INVALID_PARAMETER    400  a form field that does not fit, a malformed form (ours)
    4000  FILE_MISSING         400  no ``file`` (``files``) in the form (ours)
    4001  INVALID_FILE_FORMAT  400  not PNG, JPEG or WEBP by content (seed)
    4002  FILE_CORRUPTED       400  a PNG/JPEG/WEBP that does not decode (seed)
    4003  FILE_TOO_LARGE       413  over 10 MB, or too many pixels: a bomb (seed)
    4004  NOT_FOUND            404  unknown processing_id, batch_id, image or model (ours)
    4010  UNAUTHORIZED         401  an API key is needed, or the one sent is wrong (ours)
    4030  FORBIDDEN            403  (ours)
    4029  TOO_MANY_REQUESTS    429  more concurrent requests from one address (ours)
    5001  OPENAI_API_ERROR     502  the analysis model failed (seed)
    5002  FAL_API_ERROR        502  the background model failed (seed)
    5003  DATABASE_ERROR       503  the database did not answer (seed)
    5000  INTERNAL_ERROR       500  anything else (ours)

The seed documents 400 for every bad request, so Conveyor's 422 (a field that does not
validate) is answered as 400 on these endpoints (``seed_status``).
"""

from __future__ import annotations

from typing import Any

from conveyor.errors import ConveyorError


class PhotoApiError(ConveyorError):
    """An error of the seed-004 API; ``seed_code`` is the seed's number for it."""

    status_code = 500
    code = "INTERNAL_ERROR"
    seed_code = 5000


class InvalidParameter(PhotoApiError):
    status_code = 400
    code = "INVALID_PARAMETER"
    seed_code = 4000


class MissingFile(InvalidParameter):
    code = "FILE_MISSING"


class InvalidFileFormat(PhotoApiError):
    status_code = 400
    code = "INVALID_FILE_FORMAT"
    seed_code = 4001


class FileCorrupted(PhotoApiError):
    status_code = 400
    code = "FILE_CORRUPTED"
    seed_code = 4002


class FileTooLarge(PhotoApiError):
    status_code = 413
    code = "FILE_TOO_LARGE"
    seed_code = 4003


class PhotoNotFound(PhotoApiError):
    status_code = 404
    code = "NOT_FOUND"
    seed_code = 4004


class TooManyConcurrentRequests(PhotoApiError):
    status_code = 429
    code = "TOO_MANY_REQUESTS"
    seed_code = 4029


class AnalysisServiceError(PhotoApiError):
    status_code = 502
    code = "OPENAI_API_ERROR"
    seed_code = 5001


class GenerationServiceError(PhotoApiError):
    status_code = 502
    code = "FAL_API_ERROR"
    seed_code = 5002


class DatabaseUnavailable(PhotoApiError):
    status_code = 503
    code = "DATABASE_ERROR"
    seed_code = 5003


# Conveyor's own errors (a bad JSON field, an unknown job...) by HTTP status.
_SEED_CODES_BY_STATUS = {
    400: 4000,
    401: 4010,
    403: 4030,
    404: 4004,
    413: 4003,
    415: 4001,
    422: 4000,
    429: 4029,
}


def seed_code_of(error: ConveyorError) -> int:
    """The seed's number for any ``ConveyorError``."""
    if isinstance(error, PhotoApiError):
        return error.seed_code
    if error.status_code in _SEED_CODES_BY_STATUS:
        return _SEED_CODES_BY_STATUS[error.status_code]
    return 4000 if error.status_code < 500 else 5000


def seed_status(error: ConveyorError) -> int:
    """The HTTP status the seed's endpoints answer ``error`` with (422 becomes 400)."""
    return 400 if error.status_code == 422 else error.status_code


def seed_error_body(error: ConveyorError) -> dict[str, Any]:
    """``{"error", "message", "code"}`` with the seed's number as ``code``."""
    return {"error": error.code, "message": error.message, "code": seed_code_of(error)}
