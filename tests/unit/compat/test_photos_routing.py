"""What the seed-004 routes answer for each kind of error: the seed's body and number."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from conveyor.compat.photos.errors import (
    FileTooLarge,
    TooManyConcurrentRequests,
    seed_error_body,
    seed_status,
)
from conveyor.compat.photos.routing import as_seed_error, seed_error_response
from conveyor.errors import NotFound, Unauthorized, ValidationFailed

REQUEST = Request({"type": "http", "method": "POST", "path": "/process_single", "headers": []})


@pytest.mark.parametrize(
    ("raised", "status", "error", "code"),
    [
        (FileTooLarge("Файл слишком большой"), 413, "FILE_TOO_LARGE", 4003),
        (NotFound("job x not found"), 404, "NOT_FOUND", 4004),
        (Unauthorized("an API key is required"), 401, "UNAUTHORIZED", 4010),
        (ValidationFailed("unknown recipe"), 400, "VALIDATION_ERROR", 4000),
        (
            RequestValidationError([{"loc": ("body", "enhance"), "msg": "not a boolean"}]),
            400,
            "INVALID_PARAMETER",
            4000,
        ),
        (HTTPException(400, "There was an error parsing the body"), 400, "HTTP_ERROR", 4000),
        (OperationalError("SELECT 1", {}, Exception("gone")), 503, "DATABASE_ERROR", 5003),
        (RuntimeError("a bug"), 500, "INTERNAL_ERROR", 5000),
    ],
)
def test_each_error_in_the_seed_body(raised: Exception, status: int, error: str, code: int) -> None:
    rendered = as_seed_error(raised, REQUEST)
    assert seed_status(rendered) == status
    body = seed_error_body(rendered)
    assert (body["error"], body["code"]) == (error, code)
    assert set(body) == {"error", "message", "code"}


def test_a_validation_error_names_the_field() -> None:
    error = as_seed_error(
        RequestValidationError([{"loc": ("body", "enhance"), "msg": "not a boolean"}]), REQUEST
    )
    assert error.message == "Неверный запрос: enhance: not a boolean"


def test_a_refusal_with_retry_after_says_when() -> None:
    busy = TooManyConcurrentRequests("busy", retry_after=2)
    answer = seed_error_response(busy)
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "2"
