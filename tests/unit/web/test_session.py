"""Console sessions: signed, expiring, never holding the key; CSRF tokens tied to them."""

from __future__ import annotations

from conveyor.clients.service import LOCAL_CLIENT, Client
from conveyor.core.clock import ManualClock
from conveyor.web.session import SIGNED_IN_FOR, SessionCodec, is_admin


def _codec(clock: ManualClock, secret: str = "s" * 40) -> SessionCodec:
    return SessionCodec(secret, clock)


def test_a_session_reads_back_until_it_expires() -> None:
    clock = ManualClock()
    codec = _codec(clock)
    session = codec.signed_in("key-1")
    cookie = codec.encode(session)
    assert codec.decode(cookie) == session
    clock.advance(SIGNED_IN_FOR.total_seconds() - 1)
    assert codec.decode(cookie) == session
    clock.advance(1)
    assert codec.decode(cookie) is None


def test_forged_or_foreign_cookies_are_refused() -> None:
    clock = ManualClock()
    codec = _codec(clock)
    cookie = codec.encode(codec.signed_in("key-1"))
    _payload, mac = cookie.rsplit(".", 1)
    other = codec.encode(codec.signed_in("key-2")).rsplit(".", 1)[0]
    assert codec.decode(f"{other}.{mac}") is None
    assert codec.decode(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    assert _codec(clock, "t" * 40).decode(cookie) is None
    assert codec.decode("garbage") is None
    assert codec.decode(None) is None
    assert codec.decode("x" * 5000) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    codec = _codec(ManualClock())
    first, second = codec.open_session(), codec.open_session()
    token = codec.csrf_token(first)
    assert codec.csrf_ok(first, token)
    assert not codec.csrf_ok(second, token)
    assert not codec.csrf_ok(first, None)
    assert not codec.csrf_ok(first, "")


def test_the_cookie_names_the_key_by_id_only() -> None:
    codec = _codec(ManualClock())
    cookie = codec.encode(codec.signed_in("0f1e2d3c-key-id"))
    assert "cvk_" not in cookie
    decoded = codec.decode(cookie)
    assert decoded is not None
    assert decoded.key_id == "0f1e2d3c-key-id"


def test_the_local_client_is_the_admin_until_keys_have_scopes() -> None:
    assert is_admin(LOCAL_CLIENT)
    assert not is_admin(Client("c0ffee", "alice"))
