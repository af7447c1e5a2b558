"""Who is looking at the console: a signed session cookie and the CSRF token derived from it.

The cookie holds a random session id (``sid``), the id of the API key the person signed in
with (never the key itself) and an expiry, signed with an HMAC of the server's secret. Every
request re-reads the key by id, so revoking it ends the session at once. In open mode (no
key exists, loopback address) the cookie carries no key and only anchors the CSRF token:
forms must still prove they came from a page of this console, since any site a local user
visits could otherwise post to ``127.0.0.1``.

The CSRF token is a synchronizer token tied to the session: an HMAC of its ``sid``. A form
carries it in a hidden field; the cookie is ``HttpOnly`` and ``SameSite=Strict``, so another
site can neither read the token nor send the cookie. Signing in issues a new ``sid``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from conveyor.clients.service import Client
from conveyor.core.clock import Clock
from conveyor.errors import Forbidden, Unauthorized

COOKIE_NAME = "conveyor_console"
CSRF_FIELD = "csrf_token"
SIGNED_IN_FOR = timedelta(hours=12)
OPEN_SESSION_FOR = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    sid: str
    key_id: str | None
    expires: int  # seconds since the epoch


@dataclass(slots=True)
class Viewer:
    """The person behind a console request: whose work they see, and their session.

    ``fresh`` marks a session made for this request: the response must set its cookie."""

    client: Client
    session: ConsoleSession
    csrf_token: str
    signed_in: bool
    fresh: bool = False
    admin: bool = field(init=False)

    def __post_init__(self) -> None:
        self.admin = is_admin(self.client)


def is_admin(client: Client) -> bool:
    """Whether this person may manage API keys and dead tasks: the one place the console
    decides it. A key with the ``admin`` scope (``conveyor keys create NAME --admin``), or the
    local client of open mode."""
    return client.is_admin


class SignInRequired(Unauthorized):
    """No valid session while API keys exist: the console sends the person to sign in."""

    code = "SIGN_IN_REQUIRED"


class CsrfRefused(Forbidden):
    code = "CSRF_TOKEN_INVALID"


class SessionCodec:
    """Makes, signs and reads session cookies and their CSRF tokens."""

    def __init__(self, secret: str, clock: Clock) -> None:
        # A key of its own, so a console MAC can never pass for a webhook or link signature.
        self._key = hashlib.sha256(b"conveyor console session\x00" + secret.encode()).digest()
        self.clock = clock

    def _mac(self, purpose: str, payload: str) -> str:
        message = f"{purpose}\x00{payload}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _new(self, key_id: str | None, lifetime: timedelta) -> ConsoleSession:
        expires = int((self.clock.now() + lifetime).timestamp())
        return ConsoleSession(secrets.token_urlsafe(18), key_id, expires)

    def open_session(self) -> ConsoleSession:
        return self._new(None, OPEN_SESSION_FOR)

    def signed_in(self, key_id: str) -> ConsoleSession:
        return self._new(key_id, SIGNED_IN_FOR)

    def encode(self, session: ConsoleSession) -> str:
        raw = json.dumps(
            {"sid": session.sid, "kid": session.key_id, "exp": session.expires},
            separators=(",", ":"),
        )
        payload = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        return f"{payload}.{self._mac('session', payload)}"

    def decode(self, value: str | None) -> ConsoleSession | None:
        """The session a cookie holds, or None if it is absent, forged or expired."""
        if not value or len(value) > 1000 or "." not in value:
            return None
        payload, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = ConsoleSession(str(raw["sid"]), raw["kid"], int(raw["exp"]))
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        if session.key_id is not None and not isinstance(session.key_id, str):
            return None
        if session.expires <= self.clock.now().timestamp():
            return None
        return session

    def csrf_token(self, session: ConsoleSession) -> str:
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: ConsoleSession, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token, self.csrf_token(session))

    def seconds_left(self, session: ConsoleSession) -> int:
        return max(0, session.expires - int(self.clock.now().timestamp()))
