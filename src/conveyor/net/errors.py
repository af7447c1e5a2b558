"""What can go wrong when Conveyor fetches a URL, split by what the caller should do.

    FetchError                    ConveyorError; ``retryable`` says whether trying later may help
    ├── UrlRefused                400  the URL or where it leads is not allowed (SSRF policy)
    ├── FetchTooLarge             413  the body is, or announces itself as, over the limit
    ├── UnexpectedContentType     415  the bytes are not of an accepted type
    │   └── NotAnImage            415  ... and an image was required
    └── FetchFailed               502  connection, DNS, timeout or HTTP error;
                                       retryable for timeouts, connection errors, 408/429/5xx

Messages are one short sentence a client can act on ("URL refused: cdn.example resolves
to a private address 10.0.0.5"): they end up as per-item errors in API answers. They name
the host, never the full URL, whose query string may carry a signed token.
"""

from __future__ import annotations

from conveyor.errors import ConveyorError

__all__ = [
    "FetchError",
    "FetchFailed",
    "FetchTooLarge",
    "NotAnImage",
    "UnexpectedContentType",
    "UrlRefused",
]


class FetchError(ConveyorError):
    status_code = 502
    code = "FETCH_ERROR"


class UrlRefused(FetchError):
    """The policy forbids this URL; ``reason`` is the sentence without the prefix."""

    status_code = 400
    code = "URL_REFUSED"

    def __init__(self, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"URL refused: {reason}" + (f" ({hint})" if hint else ""))
        self.reason = reason


# What lets an operator fetch from a private address: said with every such refusal.
PRIVATE_URL_HINT = (
    "to allow it, set CONVEYOR_ALLOW_PRIVATE_URLS=true, or name the host in "
    "CONVEYOR_ALLOWED_FETCH_HOSTS or its network in CONVEYOR_ALLOWED_FETCH_NETWORKS"
)


class FetchTooLarge(FetchError):
    status_code = 413
    code = "FETCH_TOO_LARGE"

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class UnexpectedContentType(FetchError):
    """``mime`` is what the bytes were sniffed as (``None``: nothing recognisable)."""

    status_code = 415
    code = "UNEXPECTED_CONTENT_TYPE"

    def __init__(self, message: str, *, mime: str | None) -> None:
        super().__init__(message)
        self.mime = mime


class NotAnImage(UnexpectedContentType):
    code = "NOT_AN_IMAGE"


class FetchFailed(FetchError):
    """The fetch did not complete; ``http_status`` is set when the server answered."""

    code = "FETCH_FAILED"

    def __init__(self, message: str, *, retryable: bool, http_status: int | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.http_status = http_status
