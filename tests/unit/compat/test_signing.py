"""Seed 000's signature, computed here with the stdlib exactly as the seed's client does,
and the request signature for the management endpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from conveyor.compat.descriptions.signing import (
    _UNKNOWN_CLIENT_KEY,
    CLIENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RequestSignatureRejected,
    canonical_lots,
    canonical_request,
    sign_lots,
    sign_request,
    signature_format_problem,
    signed_headers,
    verify_request,
    verify_signature,
)

KEYS = {"fleet": "fleet-shared-key", "dealer": "dealer-shared-key", "auction": "ключ-аукциона"}

LOTS: list[dict[str, Any]] = [
    {
        "lot_id": "car-12345",
        "additional_info": "2021 BMW X5, front damage",
        "images": [
            {"url": "https://example.com/front.jpg"},
            {"url": "https://example.com/side.jpg"},
        ],
    }
]


def seed_signature(lots_data: Any, shared_key: str) -> str:
    """What the seed's ``generate_signature`` computes, written out independently."""
    normalized = json.dumps(lots_data, separators=(",", ":"), sort_keys=True)
    return hmac.new(shared_key.encode(), normalized.encode(), hashlib.sha256).hexdigest()


def test_signature_is_the_seeds() -> None:
    assert sign_lots(LOTS, KEYS["fleet"]) == seed_signature(LOTS, KEYS["fleet"])
    assert canonical_lots(LOTS).startswith(b'[{"additional_info":"2021 BMW X5, front damage",')


def test_each_client_is_recognised_by_its_own_key() -> None:
    for name, key in KEYS.items():
        assert verify_signature(LOTS, seed_signature(LOTS, key), KEYS) == name


def test_a_signature_with_an_unknown_key_matches_no_client() -> None:
    assert verify_signature(LOTS, seed_signature(LOTS, "someone-else"), KEYS) is None
    assert verify_signature(LOTS, seed_signature(LOTS, "fleet-shared-key"), {}) is None


def last_digit_changed(signature: str) -> str:
    """The same signature with only its last hex digit different (still 64 hex digits)."""
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


def test_a_signature_differing_only_in_its_last_digit_is_refused() -> None:
    # Every digit counts: a comparison of a prefix only would accept this one.
    signature = seed_signature(LOTS, KEYS["fleet"])
    assert signature_format_problem(last_digit_changed(signature)) is None
    assert verify_signature(LOTS, last_digit_changed(signature), KEYS) is None
    assert verify_signature(LOTS, last_digit_changed(signature).upper(), KEYS) is None


def test_non_ascii_is_signed_as_ascii_escapes() -> None:
    lots = [
        {"lot_id": "lot-ü", "additional_info": "Škoda Octavia, вмятина на двери 🚗", "images": []}
    ]
    signature = seed_signature(lots, KEYS["dealer"])

    assert b"\\u0160koda" in canonical_lots(lots)
    assert b"\\ud83d\\ude97" in canonical_lots(lots)  # the emoji as a surrogate pair
    assert verify_signature(lots, signature, KEYS) == "dealer"
    # A client that signed UTF-8 (ensure_ascii=False) does not match the seed's algorithm.
    utf8 = json.dumps(lots, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    wrong = hmac.new(b"dealer-shared-key", utf8.encode(), hashlib.sha256).hexdigest()
    assert verify_signature(lots, wrong, KEYS) is None


def test_a_non_ascii_key_is_encoded_as_utf8_like_the_seed() -> None:
    assert verify_signature(LOTS, seed_signature(LOTS, KEYS["auction"]), KEYS) == "auction"


def test_key_order_in_the_body_does_not_matter() -> None:
    reordered = [
        {
            "images": [
                {"url": "https://example.com/front.jpg"},
                {"url": "https://example.com/side.jpg"},
            ],
            "additional_info": "2021 BMW X5, front damage",
            "lot_id": "car-12345",
        }
    ]
    assert verify_signature(reordered, seed_signature(LOTS, KEYS["fleet"]), KEYS) == "fleet"


def test_whitespace_in_the_body_does_not_matter() -> None:
    # The server verifies the parsed lots, re-serialised, not the bytes it received.
    pretty = json.dumps({"signature": "x", "lots": LOTS}, indent=4, ensure_ascii=False)
    parsed = json.loads(pretty)["lots"]
    assert verify_signature(parsed, seed_signature(LOTS, KEYS["fleet"]), KEYS) == "fleet"


def test_array_order_and_values_do_matter() -> None:
    signature = seed_signature(LOTS, KEYS["fleet"])
    swapped = [dict(LOTS[0], images=list(reversed(LOTS[0]["images"])))]
    changed = [dict(LOTS[0], additional_info="2021 BMW X5, no damage")]
    assert verify_signature(swapped, signature, KEYS) is None
    assert verify_signature(changed, signature, KEYS) is None


def test_the_sha256_prefix_is_refused_as_the_seed_says() -> None:
    signature = seed_signature(LOTS, KEYS["fleet"])
    for prefixed in (f"sha256={signature}", f"SHA256={signature}"):
        assert verify_signature(LOTS, prefixed, KEYS) is None
        assert (
            signature_format_problem(prefixed) == 'send the signature without the "sha256=" prefix'
        )


@pytest.mark.parametrize(
    ("signature", "problem"),
    [
        (None, "missing"),
        ("", "missing"),
        (12345, "missing"),
        ("abc", "64 hexadecimal"),
        ("z" * 64, "64 hexadecimal"),
        ("a" * 63, "64 hexadecimal"),
        ("a" * 65, "64 hexadecimal"),
        (" " + "a" * 64, "64 hexadecimal"),
    ],
)
def test_malformed_signatures_are_refused_with_a_reason(signature: object, problem: str) -> None:
    assert verify_signature(LOTS, signature, KEYS) is None
    reason = signature_format_problem(signature)
    assert reason is not None
    assert problem in reason


def test_upper_case_hex_is_still_hex() -> None:
    assert verify_signature(LOTS, seed_signature(LOTS, KEYS["fleet"]).upper(), KEYS) == "fleet"
    assert signature_format_problem(seed_signature(LOTS, KEYS["fleet"])) is None


def test_languages_and_version_are_not_covered_by_the_seeds_signature() -> None:
    # Documented weakness of the seed's scheme: the same signature verifies whatever
    # languages or version travel with the lots. The API layer must handle replays.
    body = {"version": "1.0.0", "languages": ["en"], "lots": LOTS}
    body["signature"] = seed_signature(body["lots"], KEYS["fleet"])
    replayed = dict(body, languages=["en", "de", "fr", "ja"], version="9.9.9")
    assert verify_signature(replayed["lots"], replayed["signature"], KEYS) == "fleet"


# Management requests ----------------------------------------------------------------------

NOW = 1_754_469_000.0


def clock() -> float:
    return NOW


def test_canonical_request_matches_the_documented_example() -> None:
    message = canonical_request(
        "get", "/api/v1/batch-jobs", "status=completed&limit=10", 1754469000
    )
    assert message == b"GET\n/api/v1/batch-jobs\nlimit=10&status=completed\n1754469000"
    expected = hmac.new(b"fleet-shared-key", message, hashlib.sha256).hexdigest()
    assert (
        sign_request(
            "GET",
            "/api/v1/batch-jobs",
            "?limit=10&status=completed",
            1754469000,
            "fleet-shared-key",
        )
        == expected
    )


def test_query_forms_sign_alike_and_are_percent_encoded() -> None:
    as_string = canonical_request("GET", "/p", "b=2&a=x y&a=1", 1)
    assert as_string == canonical_request("GET", "/p", [("a", "1"), ("b", "2"), ("a", "x y")], 1)
    assert as_string == b"GET\n/p\na=1&a=x%20y&b=2\n1"
    assert canonical_request("GET", "/p", {"status": "in progress"}, 1).endswith(
        b"status=in%20progress\n1"
    )
    assert canonical_request("POST", "/p", "", 1) == b"POST\n/p\n\n1"


def request_headers(
    method: str = "GET", path: str = "/api/v1/batch-jobs", query: str = "limit=10"
) -> dict[str, str]:
    return signed_headers(method, path, query, client="fleet", shared_key=KEYS["fleet"], now=clock)


def verify(
    headers: dict[str, str],
    method: str = "GET",
    path: str = "/api/v1/batch-jobs",
    query: str = "limit=10",
    now: float = NOW,
) -> str:
    return verify_request(
        method,
        path,
        query,
        client=headers.get(CLIENT_HEADER),
        timestamp=headers.get(TIMESTAMP_HEADER),
        signature=headers.get(SIGNATURE_HEADER),
        keys=KEYS,
        now=lambda: now,
    )


def test_a_signed_request_names_its_client() -> None:
    headers = request_headers()
    assert headers[TIMESTAMP_HEADER] == "1754469000"
    assert verify(headers) == "fleet"
    cancel = request_headers("POST", "/api/v1/batch-jobs/550e8400/cancel", "")
    assert verify(cancel, "POST", "/api/v1/batch-jobs/550e8400/cancel", "") == "fleet"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"method": "POST"}, "does not match"),
        ({"path": "/api/v1/batch-jobs/other/cancel"}, "does not match"),
        ({"query": "limit=1000"}, "does not match"),
        ({"now": NOW + 301}, "more than 300 s"),
        ({"now": NOW - 301}, "more than 300 s"),
    ],
)
def test_anything_changed_is_refused(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(RequestSignatureRejected, match=reason) as caught:
        verify(request_headers(), **change)
    assert caught.value.status_code == 403


def test_the_window_is_inclusive_of_300_seconds() -> None:
    assert verify(request_headers(), now=NOW + 300) == "fleet"
    assert verify(request_headers(), now=NOW - 300) == "fleet"


def test_missing_forged_and_foreign_credentials_are_refused() -> None:
    good = request_headers()
    with pytest.raises(RequestSignatureRejected, match="missing X-Client, X-Signature headers"):
        verify({TIMESTAMP_HEADER: good[TIMESTAMP_HEADER]})
    with pytest.raises(RequestSignatureRejected, match="unix time"):
        verify(dict(good, **{TIMESTAMP_HEADER: "2025-08-06T08:30:00Z"}))
    with pytest.raises(RequestSignatureRejected, match="sha256="):
        verify(dict(good, **{SIGNATURE_HEADER: "sha256=" + good[SIGNATURE_HEADER]}))
    # Another client's name with fleet's signature, and a name no one has.
    with pytest.raises(RequestSignatureRejected, match="does not match"):
        verify(dict(good, **{CLIENT_HEADER: "dealer"}))
    with pytest.raises(RequestSignatureRejected, match="does not match"):
        verify(dict(good, **{CLIENT_HEADER: "nobody"}))


def test_a_request_differing_only_in_the_last_signature_digit_is_refused() -> None:
    good = request_headers()
    changed = dict(good, **{SIGNATURE_HEADER: last_digit_changed(good[SIGNATURE_HEADER])})
    with pytest.raises(RequestSignatureRejected, match="does not match"):
        verify(changed)


def test_an_unknown_client_signing_with_the_throwaway_key_is_refused() -> None:
    # The throwaway key only makes an unknown name cost as much as a known one; a request
    # that happens to be signed with it must not name a client into existence.
    forged = signed_headers(
        "GET",
        "/api/v1/batch-jobs",
        "limit=10",
        client="nobody",
        shared_key=_UNKNOWN_CLIENT_KEY,
        now=clock,
    )
    with pytest.raises(RequestSignatureRejected, match="does not match"):
        verify(forged)
