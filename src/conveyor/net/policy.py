"""Which URLs Conveyor may fetch: the SSRF boundary, as data and pure functions.

Clients hand Conveyor URLs (images to describe, webhooks to call) and providers hand back
more (results to download). Any of them may point inside the network Conveyor runs in: a
cloud metadata service at 169.254.169.254, a database on 10.0.0.5, an admin page on
localhost. ``UrlPolicy`` decides, in two steps:

1. ``check_url`` — the URL itself: http(s) only, no ``user:password@``, a host present.
   A literal IP is classified right away, including the spellings that C resolvers accept
   and humans do not read as addresses (``2130706433``, ``0x7f.1``, ``0177.0.0.1`` are all
   127.0.0.1), which are also refused as such because no legitimate URL uses them.
2. ``check_addresses`` — every address the host name resolves to. One bad address refuses
   the host: with ``[public, private]`` a connection that fails over would reach the
   private one.

Refused ranges: loopback, RFC 1918 private, link-local, CGNAT 100.64/10, multicast,
unspecified, broadcast, documentation, benchmarking and reserved space, and the IPv6
equivalents (``::1``, ``fc00::/7``, ``fe80::/10``, anything outside ``2000::/3``), with
IPv4 embedded in IPv6 (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``)
judged by the IPv4 address inside. ``allow_private`` turns the address checks off (local
development, tests); ``allowed_hosts`` and ``allowed_networks`` are an operator's narrow
exceptions (an internal image store), everything else still has to be public.
``allowed_endpoints`` is narrower still: one host *and port* each (the provider simulator
in simulate mode), so allowing the simulator on 127.0.0.1 does not open the API's own port,
the database's or any other service on that address.

The fetcher connects to exactly the addresses checked here, so a name cannot resolve to a
public address for the check and to a private one for the connection.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import TYPE_CHECKING, TypeAlias

from yarl import URL

from conveyor.net.errors import PRIVATE_URL_HINT, UrlRefused

if TYPE_CHECKING:
    from conveyor.config import Settings

__all__ = [
    "IPAddress",
    "Target",
    "UrlPolicy",
    "address_problem",
    "parse_ip_host",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address

_V4_BLOCKED: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), what)
    for net, what in (
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local (cloud metadata) address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "a broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)

_V6_BLOCKED: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), what)
    for net, what in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/32", "a Teredo tunnel address"),
        ("2001:2::/48", "a benchmarking address"),
        # IETF protocol assignments (ORCHID, AMT, AS112...): no web server lives here.
        ("2001::/23", "a reserved address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a reserved (SRv6) address"),
        ("fc00::/7", "a private (unique-local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a private (site-local) address"),
        ("ff00::/8", "a multicast address"),
    )
)
_V6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = IPv6Network("2002::/16")
_V4_COMPATIBLE = IPv6Network("::/96")

# A host whose last label is a number is an IPv4 address to inet_aton() and to browsers
# (WHATWG URL), however it is spelled; it must parse as one or be refused.
_NUMERIC_LABEL = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)")


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be fetched from (a phrase naming the address), or ``None``."""
    if isinstance(ip, IPv4Address):
        for network, what in _V4_BLOCKED:
            if ip in network:
                return f"{what} {ip}"
        return None
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        kind, v4 = embedded
        inner = address_problem(v4)
        if inner is not None:
            return f"{ip} ({kind} form of {inner})"
        # Mapped, NAT64 and 6to4 forms of a public address reach that public address; the
        # deprecated IPv4-compatible form reaches nothing legitimate.
        return f"a deprecated {kind} address {ip}" if kind == "IPv4-compatible" else None
    for net6, what in _V6_BLOCKED:
        if ip in net6:
            return f"{what} {ip}"
    if ip not in _V6_GLOBAL_UNICAST:
        return f"a reserved address {ip}"
    return None


def parse_ip_host(host: str) -> tuple[IPAddress | None, bool]:
    """``(address, canonical)`` for a literal IP host, ``(None, True)`` for a name.

    ``canonical`` is false for spellings such as ``2130706433`` or ``0x7f.1`` that resolve
    to an address without being written as one. A numeric host that is not a valid address
    in any spelling raises ``UrlRefused``.
    """
    if ":" in host:
        if "%" in host:
            raise UrlRefused(f"IPv6 zone identifiers are not allowed ({host})")
        try:
            return IPv6Address(host), True
        except ValueError as exc:
            raise UrlRefused(f"malformed IPv6 address {host}") from exc
    labels = host.rstrip(".").split(".")
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None, True
    address = _inet_aton(labels)
    if address is None:
        raise UrlRefused(f"malformed IP address {host}")
    return address, str(address) == host


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed ``check_url``, with what the fetcher needs to connect to it."""

    url: URL
    host: str
    port: int
    literal: IPAddress | None

    @property
    def host_header(self) -> str:
        """``Host`` as the origin server expects it (the name, not the pinned address)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.url.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Rules for outbound fetches; the defaults are the safe ones."""

    allow_private: bool = False
    allowed_schemes: frozenset[str] = frozenset({"http", "https"})
    # Operator exceptions: "images.internal" (exact) or ".internal" (any subdomain).
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    # Exactly these (host, port) pairs, even when private: host as ``Target.host`` spells
    # it (a lower-case name, or the canonical IP).
    allowed_endpoints: frozenset[tuple[str, int]] = frozenset()
    max_redirects: int = 5
    max_bytes: int = 25 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    # Per hop, body included: a server trickling one byte per read_timeout is cut off here.
    total_timeout: float | None = 300.0
    # The whole fetch: every hop, name resolution and reading the body, however it is split.
    deadline: float | None = 60.0
    _host_suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.allowed_schemes <= {"http", "https"}:
            raise ValueError("UrlPolicy.allowed_schemes may only contain http and https")
        if self.max_redirects < 0 or self.max_bytes <= 0:
            raise ValueError("UrlPolicy needs max_redirects >= 0 and max_bytes > 0")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("UrlPolicy timeouts must be positive")
        hosts = frozenset(h.lower().rstrip(".") for h in self.allowed_hosts)
        object.__setattr__(self, "allowed_hosts", hosts)
        suffixes = tuple(h for h in hosts if h.startswith("."))
        object.__setattr__(self, "_host_suffixes", suffixes)
        endpoints = frozenset(_endpoint(host, port) for host, port in self.allowed_endpoints)
        object.__setattr__(self, "allowed_endpoints", endpoints)

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        """The policy the running service uses (``CONVEYOR_ALLOW_PRIVATE_URLS`` etc.).

        In simulate mode the simulator's host and port are allowed too (its result URLs are
        local), and nothing else on that host.
        """
        hosts = {h.strip() for h in settings.allowed_fetch_hosts if h.strip()}
        networks = [ip_network(n.strip(), strict=False) for n in settings.allowed_fetch_networks]
        endpoints: set[tuple[str, int]] = set()
        if settings.simulate:
            simulator = URL(settings.simulator_url)
            endpoints.add((simulator.host or "127.0.0.1", simulator.port or 80))
        return cls(
            allow_private=settings.allow_private_urls,
            max_bytes=settings.fetch_max_bytes,
            deadline=settings.fetch_deadline,
            allowed_hosts=frozenset(hosts),
            allowed_networks=tuple(networks),
            allowed_endpoints=frozenset(endpoints),
        )

    def check_url(self, url: str | URL) -> Target:
        """Parse and vet ``url`` before any network traffic; raise ``UrlRefused``."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError) as exc:
            raise UrlRefused("malformed URL") from exc
        scheme = parsed.scheme.lower()
        if scheme not in self.allowed_schemes:
            shown = f"{scheme}: URLs" if scheme else "a relative URL"
            raise UrlRefused(f"only http and https URLs can be fetched, not {shown}")
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise UrlRefused("URLs with a user name or password are not allowed")
        raw_host = parsed.raw_host
        if not raw_host:
            raise UrlRefused("the URL has no host")
        host = raw_host.lower().rstrip(".")
        if not host or any(c.isspace() for c in host):
            raise UrlRefused("the URL has no valid host")
        try:
            port = parsed.port
        except ValueError as exc:
            raise UrlRefused("the URL has an invalid port") from exc
        if port is None or not 0 < port < 65536:
            raise UrlRefused("the URL has an invalid port")

        literal, canonical = parse_ip_host(host)
        if literal is not None:
            if (str(literal), port) not in self.allowed_endpoints:
                self._check_literal(host, literal, canonical=canonical)
            host = str(literal)
        target = Target(url=parsed.with_fragment(None), host=host, port=port, literal=literal)
        if (
            literal is None
            and (host == "localhost" or host.endswith(".localhost"))
            and not (self.allow_private or self.excepts(target))
        ):
            raise UrlRefused(f"{host} is a loopback name", hint=PRIVATE_URL_HINT)
        return target

    def check_addresses(self, target: Target, addresses: Sequence[IPAddress]) -> None:
        """Refuse the target unless every address its host resolved to is allowed."""
        if not addresses:
            raise UrlRefused(f"{target.host} resolves to no address")
        if self.allow_private or self.excepts(target):
            return
        for ip in addresses:
            if (problem := self._problem(ip)) is not None:
                raise UrlRefused(f"{target.host} resolves to {problem}", hint=PRIVATE_URL_HINT)

    def _check_literal(self, host: str, ip: IPAddress, *, canonical: bool) -> None:
        if self.allow_private:
            return
        if (problem := self._problem(ip)) is not None:
            # Name the spelling when it is not the plain address, so the client sees why.
            raise UrlRefused(
                f"{'the host' if canonical else host} is {problem}", hint=PRIVATE_URL_HINT
            )
        if not canonical:
            raise UrlRefused(f"{host} is an IP address in an unusual spelling (means {ip})")

    def _problem(self, ip: IPAddress) -> str | None:
        if any(ip in network for network in self.allowed_networks):
            return None
        return address_problem(ip)

    def is_internal(self, target: Target, addresses: Sequence[IPAddress]) -> bool:
        """Whether a fetch of ``target`` reaches a non-public address that only an exception
        (``allow_private``, an allowed host or network) lets through; an exactly allowed
        endpoint is not counted, since nothing else on its host can be reached through it."""
        if (target.host, target.port) in self.allowed_endpoints:
            return False
        return any(address_problem(ip) is not None for ip in addresses)

    def excepts(self, target: Target) -> bool:
        """Whether ``target`` is exempt from the address checks by name or by endpoint."""
        return (target.host, target.port) in self.allowed_endpoints or self._host_excepted(
            target.host
        )

    def _host_excepted(self, host: str) -> bool:
        return host in self.allowed_hosts or host.endswith(self._host_suffixes)


def _endpoint(host: str, port: int) -> tuple[str, int]:
    """``(host, port)`` spelled as ``check_url`` spells a target's host."""
    name = host.strip().lower().rstrip(".").strip("[]")
    literal, _ = parse_ip_host(name)
    return (str(literal) if literal is not None else name), port


def _embedded_ipv4(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    """An IPv4 address carried inside an IPv6 one, with the name of the carrying scheme."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64:
        return "NAT64", IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None and ip in _SIX_TO_FOUR:
        return "6to4", ip.sixtofour
    if ip in _V4_COMPATIBLE and int(ip) > 1:
        # ::a.b.c.d, deprecated since 2006 (RFC 4291); :: and ::1 are not of this kind.
        return "IPv4-compatible", IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _inet_aton(labels: list[str]) -> IPv4Address | None:
    """IPv4 from 1–4 dotted parts in decimal, octal (leading 0) or hex (0x), like inet_aton."""
    if not 1 <= len(labels) <= 4:
        return None
    values: list[int] = []
    for label in labels:
        try:
            if label[:2].lower() == "0x":
                values.append(int(label[2:] or "0", 16))
            elif len(label) > 1 and label.startswith("0"):
                values.append(int(label, 8))
            else:
                values.append(int(label, 10))
        except ValueError:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, value in enumerate(head):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)
