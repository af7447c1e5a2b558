"""Name resolution as a port, so the fetcher checks and connects to the same addresses.

``SafeFetcher`` asks a ``Resolver`` once per hop, checks every address it gets, and then
connects to one of those addresses itself; the name is never looked up a second time by
the HTTP client, which is what leaves no window for DNS rebinding. ``SystemResolver`` is
the operating system's ``getaddrinfo``. ``StaticResolver`` answers from a table and counts
lookups: tests use it to make a public-looking name resolve to 127.0.0.1 without a DNS
server, and to prove that each hop is resolved exactly once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from ipaddress import ip_address
from typing import Protocol

from conveyor.net.policy import IPAddress

__all__ = ["Resolver", "StaticResolver", "SystemResolver"]


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` has for a TCP connection; ``socket.gaierror`` if none."""
        ...


class SystemResolver:
    """``getaddrinfo`` in the event loop's executor, addresses de-duplicated in order."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses: list[IPAddress] = []
        for family, *_rest, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            # IPv6 link-local answers carry a zone ("fe80::1%eth0"); the address is what
            # the policy judges.
            address = ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        return addresses


class StaticResolver:
    """Answers from a fixed table (name → addresses); unknown names are not found."""

    def __init__(self, table: Mapping[str, str | Sequence[str]]) -> None:
        self._table = {
            name.lower().rstrip("."): [
                ip_address(a) for a in ([value] if isinstance(value, str) else value)
            ]
            for name, value in table.items()
        }
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        try:
            return list(self._table[host.lower().rstrip(".")])
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
