"""Outbound HTTP under an SSRF policy: every URL Conveyor fetches goes through here.

``UrlPolicy`` says what may be fetched, ``SafeFetcher`` fetches it (resolving once,
connecting to the vetted address, re-checking every redirect, streaming within a size
limit), and ``net.errors`` is what it raises. ``check_callback_url`` vets a URL a client
gives for Conveyor to call later (a webhook) when it is given.
"""

from __future__ import annotations

from conveyor.net.destinations import check_callback_url
from conveyor.net.errors import (
    FetchError,
    FetchFailed,
    FetchTooLarge,
    NotAnImage,
    UnexpectedContentType,
    UrlRefused,
)
from conveyor.net.fetcher import FetchedResponse, FetchStream, SafeFetcher
from conveyor.net.policy import IPAddress, Target, UrlPolicy, address_problem, parse_ip_host
from conveyor.net.resolver import Resolver, StaticResolver, SystemResolver

__all__ = [
    "FetchError",
    "FetchFailed",
    "FetchStream",
    "FetchTooLarge",
    "FetchedResponse",
    "IPAddress",
    "NotAnImage",
    "Resolver",
    "SafeFetcher",
    "StaticResolver",
    "SystemResolver",
    "Target",
    "UnexpectedContentType",
    "UrlPolicy",
    "UrlRefused",
    "address_problem",
    "check_callback_url",
    "parse_ip_host",
]
