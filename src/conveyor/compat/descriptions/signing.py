"""HMAC signatures of the vehicle-damage descriptions API (seed 000), and ours for the rest.

**Request bodies (the seed's scheme).** A client signs ``lots`` and nothing else::

    hex(HMAC-SHA256(shared_key, json.dumps(lots, separators=(",", ":"), sort_keys=True)))

with Python's default ``ensure_ascii=True`` (so ``"Škoda"`` is signed as ``"\\u0160koda"``)
and *without* a ``sha256=`` prefix: the seed says so explicitly and a prefixed signature is
refused, with a message saying why. The server re-serialises the parsed ``lots`` the same
way, so whitespace and key order in the body the client sent do not matter. Every
configured client key is tried and compared in constant time, with no early exit, so the
time taken does not tell which key matched.

The signature covers ``lots`` only. Anyone who has seen one signed request can send the
same lots again with other ``languages`` or another ``version`` and the signature still
verifies. That cannot change what a lot says, but it can make the client pay for work it
did not ask for, so the API layer should treat a repeated signature within a short window
as a replay (answer with the first job, do not start a second one).

**Management requests (our scheme; the seed leaves them unspecified).** Listing jobs
(``GET /api/v1/batch-jobs``) and cancelling one (``POST /api/v1/batch-jobs/{id}/cancel``)
need the client's credentials. They have no body, so the request line is signed:

    X-Client:    the client's name (selects the shared key)
    X-Timestamp: unix time in whole seconds; refused if more than 300 s from the server clock
    X-Signature: hex(HMAC-SHA256(shared_key, f"{METHOD}\\n{path}\\n{query}\\n{timestamp}"))

``METHOD`` is upper-case; ``path`` is the URL path without the query (``/api/v1/batch-jobs``);
``query`` is the query string with its parameters sorted by name then value, each name and
value percent-encoded (RFC 3986, space as ``%20``) and joined with ``&`` — empty when there
is none. For example ``GET /api/v1/batch-jobs?status=completed&limit=10`` at 1754469000
signs ``"GET\\n/api/v1/batch-jobs\\nlimit=10&status=completed\\n1754469000"``. A captured
request can be replayed only within the 300 s window, and both endpoints are idempotent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, quote

from conveyor.errors import Forbidden

__all__ = [
    "CLIENT_HEADER",
    "MAX_CLOCK_SKEW",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "RequestSignatureRejected",
    "canonical_lots",
    "canonical_request",
    "sign_lots",
    "sign_request",
    "signature_format_problem",
    "signed_headers",
    "verify_request",
    "verify_signature",
]

CLIENT_HEADER = "X-Client"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
MAX_CLOCK_SKEW = 300

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# What an unknown client's signature is checked against (see ``verify_request``).
_UNKNOWN_CLIENT_KEY = "\x00unknown-client"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

Query: TypeAlias = str | Mapping[str, str] | Sequence[tuple[str, str]]


class RequestSignatureRejected(Forbidden):
    """A management request whose credentials are missing, stale or wrong."""

    code = "INVALID_SIGNATURE"


def canonical_lots(lots: Any) -> bytes:
    """The bytes the seed's clients sign: compact, sorted keys, ASCII-escaped JSON."""
    return json.dumps(lots, separators=(",", ":"), sort_keys=True).encode()


def sign_lots(lots: Any, shared_key: str) -> str:
    """Hex HMAC-SHA256 of ``canonical_lots(lots)``, without any prefix."""
    return _hmac_hex(shared_key, canonical_lots(lots))


def signature_format_problem(signature: object) -> str | None:
    """Why ``signature`` cannot be valid whatever the key, for a helpful 403; else ``None``."""
    if not isinstance(signature, str) or not signature:
        return "the signature is missing"
    if signature[:7].lower() == "sha256=":
        return 'send the signature without the "sha256=" prefix'
    if not _HEX_SHA256.fullmatch(signature):
        return "the signature must be 64 hexadecimal characters (HMAC-SHA256)"
    return None


def verify_signature(lots: Any, signature: object, keys: Mapping[str, str]) -> str | None:
    """Name of the client whose key signed ``lots``, or ``None``."""
    if signature_format_problem(signature) is not None:
        return None
    assert isinstance(signature, str)
    body = canonical_lots(lots)
    return _match_key(body, signature.lower(), keys)


def canonical_request(method: str, path: str, query: Query, timestamp: int | str) -> bytes:
    """The string a management request signs (see the module docstring)."""
    return "\n".join((method.upper(), path, _canonical_query(query), str(timestamp))).encode()


def sign_request(
    method: str, path: str, query: Query, timestamp: int | str, shared_key: str
) -> str:
    """Hex HMAC-SHA256 of ``canonical_request(...)``."""
    return _hmac_hex(shared_key, canonical_request(method, path, query, timestamp))


def signed_headers(
    method: str,
    path: str,
    query: Query,
    *,
    client: str,
    shared_key: str,
    now: Callable[[], float] = time.time,
) -> dict[str, str]:
    """The three headers a client adds to a management request."""
    timestamp = str(int(now()))
    return {
        CLIENT_HEADER: client,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign_request(method, path, query, timestamp, shared_key),
    }


def verify_request(
    method: str,
    path: str,
    query: Query,
    *,
    client: str | None,
    timestamp: str | None,
    signature: str | None,
    keys: Mapping[str, str],
    now: Callable[[], float] = time.time,
    max_skew: int = MAX_CLOCK_SKEW,
) -> str:
    """The client name if the headers sign this request; ``RequestSignatureRejected`` if not."""
    if not client or not timestamp or not signature:
        missing = [
            name
            for name, value in (
                (CLIENT_HEADER, client),
                (TIMESTAMP_HEADER, timestamp),
                (SIGNATURE_HEADER, signature),
            )
            if not value
        ]
        plural = "s" if len(missing) > 1 else ""
        raise RequestSignatureRejected(f"missing {', '.join(missing)} header{plural}")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise RequestSignatureRejected(f"{TIMESTAMP_HEADER} must be unix time in seconds")
    if abs(now() - int(timestamp)) > max_skew:
        raise RequestSignatureRejected(
            f"{TIMESTAMP_HEADER} is more than {max_skew} s away from the server clock"
        )
    if problem := signature_format_problem(signature):
        raise RequestSignatureRejected(problem)
    body = canonical_request(method, path, query, timestamp)
    # An unknown client is checked against a throwaway key so that it costs the same as a
    # known one with a wrong signature and the answer is the same: client names stay secret.
    key = keys.get(client)
    expected = _hmac_hex(key if key is not None else _UNKNOWN_CLIENT_KEY, body)
    if not hmac.compare_digest(expected, signature.lower()) or key is None:
        raise RequestSignatureRejected("signature does not match")
    return client


def _match_key(body: bytes, signature: str, keys: Mapping[str, str]) -> str | None:
    # Every key is tried even after a match (no early return), so the time taken depends on
    # the number of keys, not on which one matched.
    matched: str | None = None
    for name, key in keys.items():
        if hmac.compare_digest(_hmac_hex(key, body), signature) and matched is None:
            matched = name
    return matched


def _hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _canonical_query(query: Query) -> str:
    if isinstance(query, str):
        pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    elif isinstance(query, Mapping):
        pairs = [(str(k), str(v)) for k, v in query.items()]
    else:
        pairs = [(str(k), str(v)) for k, v in query]
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)
