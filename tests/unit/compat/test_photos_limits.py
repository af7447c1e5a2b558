"""Seed 004's limit of 10 requests at once per client, and who the client is behind proxies."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from conveyor.compat.photos.errors import TooManyConcurrentRequests, seed_error_body
from conveyor.compat.photos.limits import ConcurrencyLimit, TrustedProxies, parse_address
from conveyor.config import Settings
from conveyor.errors import ConfigurationError

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8:1::/48", "192.168.1.5"])


def test_without_a_trusted_proxy_the_header_is_ignored() -> None:
    nobody = TrustedProxies()
    assert nobody.client_address("203.0.113.9", "1.2.3.4") == "203.0.113.9"
    # A client talking to us directly cannot pick its address either.
    assert PROXIES.client_address("203.0.113.9", "10.0.0.1, 1.2.3.4") == "203.0.113.9"


def test_behind_trusted_proxies_the_first_untrusted_hop_is_the_client() -> None:
    assert PROXIES.client_address("10.1.2.3", "198.51.100.7") == "198.51.100.7"
    # Two proxies of ours: the client is left of the inner one.
    assert PROXIES.client_address("10.1.2.3", "198.51.100.7, 192.168.1.5") == "198.51.100.7"
    # A client that sends its own header: its fake entry sits left of what the proxy saw.
    assert PROXIES.client_address("10.1.2.3", "6.6.6.6, 198.51.100.7") == "198.51.100.7"
    # A hop that is not an address stops the walk at the last proxy that vouched.
    assert PROXIES.client_address("10.1.2.3", "198.51.100.7, unknown") == "10.1.2.3"
    assert PROXIES.client_address("10.1.2.3", "") == "10.1.2.3"
    assert PROXIES.client_address("2001:db8:1::5", "[2001:db8:9::1]:443") == "2001:db8:9::1"


def test_addresses_are_read_as_proxies_write_them() -> None:
    assert str(parse_address(" 198.51.100.7:5678 ")) == "198.51.100.7"
    assert str(parse_address("[2001:db8::1]")) == "2001:db8::1"
    assert str(parse_address("::ffff:198.51.100.7")) == "198.51.100.7"
    assert parse_address("unknown") is None
    assert parse_address("proxy.internal") is None
    assert parse_address("[2001:db8::1") is None
    assert PROXIES.client_address(None) == "unknown"
    assert PROXIES.client_address("testclient") == "testclient"


def test_the_eleventh_request_at_once_from_one_address_is_refused() -> None:
    limit = ConcurrencyLimit(10)
    with ExitStack() as held:
        for _ in range(10):
            held.enter_context(limit.slot("198.51.100.7"))
        assert limit.in_flight("198.51.100.7") == 10
        with pytest.raises(TooManyConcurrentRequests) as refused:
            held.enter_context(limit.slot("198.51.100.7"))
        assert refused.value.status_code == 429
        body = seed_error_body(refused.value)
        assert (body["error"], body["code"]) == ("TOO_MANY_REQUESTS", 4029)
        assert limit.in_flight("198.51.100.7") == 10
        # Another address has its own ten.
        with limit.slot("203.0.113.9"):
            assert limit.in_flight("203.0.113.9") == 1
    assert limit.in_flight("198.51.100.7") == 0
    with limit.slot("198.51.100.7"):
        pass


def test_a_slot_is_given_back_when_the_request_fails() -> None:
    limit = ConcurrencyLimit(1)
    with pytest.raises(RuntimeError), limit.slot("198.51.100.7"):
        raise RuntimeError("the handler broke")
    with limit.slot("198.51.100.7"):
        assert limit.in_flight("198.51.100.7") == 1
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimit(0)


def test_trusted_proxies_are_checked_when_settings_load() -> None:
    settings = Settings(_env_file=None, photos_trusted_proxies=[" 10.0.0.0/8", "::1"])
    assert settings.photos_trusted_proxies == ["10.0.0.0/8", "::1"]
    with pytest.raises((ValueError, ConfigurationError), match="not an IP address"):
        Settings(_env_file=None, photos_trusted_proxies=["proxy.internal"])
