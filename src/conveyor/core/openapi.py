"""The error answers of every operation, written into the OpenAPI document in one place.

Routes document the answers particular to them (a 409 when nothing is left to retry, a 502
when every model failed). The answers any operation of a kind may give are added here, each
with the JSON body of its API family, so a client (or a contract fuzzer) finds every status
it can meet in the document:

* 400 everywhere: ``RequestGuard`` refuses a NUL character or JSON nested too deep on any
  path, before a route runs;
* 401 where the operation declares a security scheme (an API key is needed);
* 404 where the path has parameters (the thing named does not exist);
* 413 where the operation takes a body (``BodySizeLimit``);
* 422 where FastAPI validates parameters or a body: its ``HTTPValidationError`` schema is
  replaced by Conveyor's body, which is what the client gets;
* whatever a family adds (seed 004: 429 on every route, and 400 where others say 422).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "description": "Every error of Conveyor's own APIs and of seeds 000, 002 and 003",
    "required": ["error", "message", "code"],
    "properties": {
        "error": {"type": "string", "description": "A stable code, e.g. NOT_FOUND"},
        "message": {"type": "string", "description": "What went wrong, for a person"},
        "code": {"type": "integer", "description": "The HTTP status"},
        "details": {"type": "object", "description": "More about it, where there is more"},
    },
}

GENERIC_DESCRIPTIONS = {
    400: "Bad request: a malformed body or parameter, a NUL character, or JSON nested over "
    "64 levels",
    401: "An API key is needed, or the one sent is wrong or revoked",
    403: "This key may not do this",
    404: "Not found: nothing by that name, or not this client's",
    413: "The request body is too large",
    422: "A parameter or field that does not validate",
    429: "Too many requests; try again later",
}


@dataclass(frozen=True, slots=True)
class ErrorFamily:
    """The operations (by path template) that answer errors in a body of their own."""

    schema_name: str
    schema: dict[str, Any]
    owns: Callable[[str], bool]
    # Statuses every operation of the family may answer, on top of the common ones.
    always: frozenset[int] = frozenset()
    # A family that answers 400 where FastAPI would say 422 documents no 422.
    no_422: bool = False
    descriptions: dict[int, str] = field(default_factory=dict)


def document_error_answers(app: FastAPI, families: Sequence[ErrorFamily] = ()) -> None:
    """Make ``app.openapi()`` document every operation's error answers (see the module)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = build()
        add_error_answers(document, families)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def add_error_answers(document: dict[str, Any], families: Sequence[ErrorFamily] = ()) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for family in families:
        schemas[family.schema_name] = family.schema
    for path, operations in document.get("paths", {}).items():
        owner = next((family for family in families if family.owns(path)), None)
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                _add_to_operation(path, operation, owner)


def _add_to_operation(path: str, operation: dict[str, Any], family: ErrorFamily | None) -> None:
    responses: dict[str, Any] = operation["responses"]
    statuses = {400}
    if operation.get("security"):
        statuses.add(401)
    if "{" in path:
        statuses.add(404)
    if "requestBody" in operation:
        statuses.add(413)
    if "422" in responses:
        statuses.add(422)
    statuses |= {int(status) for status in responses if status.isdigit() and int(status) >= 400}
    name = ERROR_SCHEMA_NAME
    descriptions = dict(GENERIC_DESCRIPTIONS)
    if family is not None:
        name = family.schema_name
        statuses |= family.always
        descriptions.update(family.descriptions)
        if family.no_422:
            statuses.discard(422)
            responses.pop("422", None)
    reference = {"$ref": f"#/components/schemas/{name}"}
    for status in sorted(statuses):
        answer = responses.setdefault(str(status), {})
        answer.setdefault("description", descriptions.get(status, "Error"))
        content = answer.get("content")
        if status >= 500 and not content:
            continue  # a 5xx documented without a body keeps its own words
        if not content or status == 422 or _untyped(content):
            answer["content"] = {"application/json": {"schema": reference}}


def _untyped(content: dict[str, Any]) -> bool:
    """A JSON answer documented with no schema (``{"application/json": {}}``)."""
    json_answer = content.get("application/json")
    return json_answer is not None and not json_answer.get("schema") and len(content) == 1
