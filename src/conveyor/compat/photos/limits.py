"""Seed 004's rate limit: at most 10 requests at once from one client address.

**Who the client is.** The connection's peer address, unless that peer is one of the
operator's trusted proxies (setting ``photos_trusted_proxies``): then ``X-Forwarded-For``
is read from its right end, each hop believed only while the address that added it is
itself trusted, and the first untrusted address is the client. A client cannot escape the
limit by sending its own ``X-Forwarded-For``: without a trusted proxy in front the header
is ignored, and behind one the client's fake entries sit left of the address the proxy saw.

**How many at once.** ``ConcurrencyLimit`` counts the requests each address has in flight
in this process; the one over the limit is refused with 429 / 4029 in the seed's body, and
nothing waits. With several API processes each counts its own (the seed ran one), so the
limit there is per address per process.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from conveyor.compat.photos.errors import TooManyConcurrentRequests

DEFAULT_LIMIT = 10
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443``,
    IPv4-mapped IPv6 read as IPv4); ``None`` for anything else (``unknown``, a host name)."""
    value = text.strip().strip('"')
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The operator's proxies; an empty set means ``X-Forwarded-For`` is never believed."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(entry.strip(), strict=False) for entry in entries
        )

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPAddress) and any(
            address.version == network.version and address in network for network in self.networks
        )

    def client_address(self, peer: str | None, forwarded_for: str | None = None) -> str:
        """The client's address for this connection (see the module docstring).

        ``forwarded_for`` is every ``X-Forwarded-For`` header of the request joined by
        commas, in order; ``peer`` the connection's own address."""
        hop = parse_address(peer or "")
        if hop is None:
            return (peer or "unknown").strip() or "unknown"
        if forwarded_for and hop in self:
            for entry in reversed(forwarded_for.split(",")):
                previous = parse_address(entry)
                if previous is None:
                    break
                hop = previous
                if hop not in self:
                    break
        return str(hop)


class ConcurrencyLimit:
    """Requests in flight per client address, refused beyond ``limit`` (no queueing)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the limit must be at least 1")
        self.limit = limit
        self._in_flight: Counter[str] = Counter()

    def in_flight(self, address: str) -> int:
        return self._in_flight[address]

    @contextmanager
    def slot(self, address: str) -> Iterator[None]:
        """Hold one of ``address``'s slots for the body of the ``with``; 429 if none is free."""
        if self._in_flight[address] >= self.limit:
            raise TooManyConcurrentRequests(
                f"Слишком много одновременных запросов: at most {self.limit} requests at once "
                "from one address; retry when one has finished"
            )
        self._in_flight[address] += 1
        try:
            yield
        finally:
            self._in_flight[address] -= 1
            if self._in_flight[address] <= 0:
                del self._in_flight[address]
