"""Fetching a URL someone else gave us, without letting it reach where it must not.

``SafeFetcher`` is the only way Conveyor downloads client images and provider results or
calls webhooks. Each hop of a request goes through the same steps:

1. ``UrlPolicy.check_url`` vets the URL itself (scheme, credentials, literal addresses);
2. the host name is resolved **once**, by the injectable ``Resolver``, and every address
   is vetted by ``UrlPolicy.check_addresses``;
3. the request is sent to one of those vetted addresses: the URL handed to aiohttp names
   the IP, while ``Host`` and the TLS server name (SNI and certificate check) stay the
   original name. aiohttp never resolves the name itself, so no second lookup can answer
   differently (DNS rebinding), and this holds for any ``ClientSession`` the caller owns;
4. redirects are not followed by aiohttp (``allow_redirects=False``): a 3xx sends the
   ``Location`` back to step 1, up to ``max_redirects`` hops. Headers the caller added
   (credentials, signatures) are sent only while the hops stay on the first origin.

A failure to fetch from an internal address (one only an operator's exception lets
through) reaches the caller as one sentence whatever went wrong (closed port, HTTP status,
not HTTP at all, silence), with the detail in the server log: a client must not learn what
answers on which internal port by reading error texts.

The body is streamed: a ``Content-Length`` over the limit is refused before reading, and
bytes are counted as they arrive, so an endless body costs at most the limit plus one
chunk. The first bytes are sniffed (``content.sniff``) and checked against ``accept``
before the caller sees any data. Errors are the small tree in ``net.errors``.

``data:`` URLs (some providers return results that way) are decoded only when a call
passes ``allow_data=True``; they never come from a redirect.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from conveyor.content.sniff import SNIFF_BYTES, sniff_mime
from conveyor.net.errors import (
    FetchError,
    FetchFailed,
    FetchTooLarge,
    NotAnImage,
    UnexpectedContentType,
    UrlRefused,
)
from conveyor.net.policy import IPAddress, Target, UrlPolicy
from conveyor.net.resolver import Resolver, SystemResolver

__all__ = ["FetchStream", "FetchedResponse", "SafeFetcher"]

log = logging.getLogger(__name__)

USER_AGENT = "Conveyor/0.1"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_DEFAULT_CHUNK = 64 * 1024
# A name with many addresses is tried on a few of them, like a browser would.
_MAX_ADDRESS_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class FetchedResponse:
    """A complete, successful (2xx) answer; ``mime`` is sniffed from the body."""

    status: int
    final_url: str
    headers: CIMultiDictProxy[str]
    body: bytes
    mime: str | None


class FetchStream:
    """An open answer: status, headers and sniffed type known, body still to be read.

    Iterate it (once) for the body in chunks; the size limit is enforced while iterating.
    """

    def __init__(
        self,
        *,
        status: int,
        final_url: str,
        headers: CIMultiDictProxy[str],
        mime: str | None,
        head: bytes,
        rest: AsyncGenerator[bytes, None],
        limit: int,
        host: str,
    ) -> None:
        self.status = status
        self.final_url = final_url
        self.headers = headers
        self.mime = mime
        self.bytes_read = len(head)
        self._head = head
        self._rest = rest
        self._limit = limit
        self._host = host
        self._started = False

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("a FetchStream body can be read only once")
        self._started = True
        return self._chunks()

    async def read(self) -> bytes:
        """The whole body (within the limit)."""
        return b"".join([chunk async for chunk in self])

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            if self._head:
                yield self._head
            async for chunk in self._rest:
                self.bytes_read += len(chunk)
                if self.bytes_read > self._limit:
                    raise _too_large(self._host, self._limit)
                yield chunk
        finally:
            await self._rest.aclose()


class SafeFetcher:
    """Fetches URLs under a ``UrlPolicy`` through the caller's aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: UrlPolicy | None = None,
        *,
        resolver: Resolver | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.policy = policy or UrlPolicy()
        self.session = session
        self._resolver: Resolver = resolver or SystemResolver()
        self._user_agent = user_agent
        self._timeout = aiohttp.ClientTimeout(
            total=self.policy.total_timeout,
            sock_connect=self.policy.connect_timeout,
            sock_read=self.policy.read_timeout,
        )

    async def fetch(
        self,
        url: str,
        *,
        max_bytes: int | None = None,
        accept: Collection[str] | None = None,
        allow_data: bool = False,
        method: str = "GET",
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FetchedResponse:
        """Fetch ``url`` completely; raise a ``FetchError`` unless it answers 2xx within limits.

        ``accept`` lists MIME types (``image/png``) or wildcards (``image/*``) the sniffed
        body must match; ``max_bytes`` overrides the policy's limit for this call.
        """
        async with self.stream(
            url,
            max_bytes=max_bytes,
            accept=accept,
            allow_data=allow_data,
            method=method,
            data=data,
            headers=headers,
        ) as answer:
            body = await answer.read()
        return FetchedResponse(
            status=answer.status,
            final_url=answer.final_url,
            headers=answer.headers,
            body=body,
            mime=answer.mime,
        )

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        max_bytes: int | None = None,
        accept: Collection[str] | None = None,
        allow_data: bool = False,
        method: str = "GET",
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        chunk_size: int = _DEFAULT_CHUNK,
    ) -> AsyncIterator[FetchStream]:
        """``async with fetcher.stream(url) as body: async for chunk in body: ...``

        The policy's ``deadline`` covers the whole fetch, reading the body included."""
        limit = self.policy.max_bytes if max_bytes is None else max_bytes
        if allow_data and url[:5].lower() == "data:":
            yield _data_url_stream(url, limit, accept)
            return
        deadline = asyncio.timeout(self.policy.deadline)
        try:
            async with deadline:
                response, target, internal = await self._follow(url, method.upper(), data, headers)
                try:
                    with _hidden_if(internal, target.host), _translated_errors(target.host):
                        answer = await _open_body(
                            response, target, limit, accept, chunk_size, internal
                        )
                    yield answer
                finally:
                    # A fully read answer leaves a reusable connection; anything else (an
                    # error, a caller that stopped early, a body over the limit) drops it.
                    if response.content.at_eof():
                        response.release()
                    else:
                        response.close()
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            host = URL(url).host if "://" in url else None
            raise FetchFailed(
                f"{host or 'the URL'} did not answer in full within "
                f"{self.policy.deadline:g} s (CONVEYOR_FETCH_DEADLINE)",
                retryable=True,
            ) from exc

    async def vet(self, url: str) -> Target:
        """Check ``url`` as a fetch would (the policy, then every address its host resolves
        to) without connecting: for URLs handed on to someone else to fetch."""
        target = self.policy.check_url(url)
        self.policy.check_addresses(target, await self._resolve(target))
        return target

    async def check_destination(self, url: str, *, lookup_timeout: float = 3.0) -> None:
        """Vet a URL that will be fetched later (a webhook) as its first hop will be vetted,
        without sending anything: raise ``UrlRefused`` if the policy refuses it or its name
        does not exist or resolves to an address the policy refuses. A lookup that fails for
        a passing reason (timeout, no DNS server) lets it through: the fetch checks again."""
        target = self.policy.check_url(url)
        if target.literal is not None or self.policy.allow_private or self.policy.excepts(target):
            return  # check_url has judged the address, or no address would be judged
        try:
            addresses = await self._resolve(target, timeout=lookup_timeout)
        except FetchFailed as exc:
            if exc.retryable:
                return
            raise UrlRefused(exc.message) from exc
        self.policy.check_addresses(target, addresses)

    async def _follow(
        self,
        url: str,
        method: str,
        data: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[aiohttp.ClientResponse, Target, bool]:
        """The final answer, its target, and whether that target is an internal address."""
        current: str | URL = url
        origin: tuple[str, str, int] | None = None
        for _hop in range(self.policy.max_redirects + 1):
            target = self.policy.check_url(current)
            here = (target.url.scheme, target.host, target.port)
            origin = origin or here
            if here != origin:
                headers = None
            addresses = await self._resolve(target)
            self.policy.check_addresses(target, addresses)
            internal = self.policy.is_internal(target, addresses)
            with _hidden_if(internal, target.host):
                response = await self._request(target, addresses, method, data, headers)
            location = response.headers.get("Location")
            if response.status not in _REDIRECT_STATUSES or not location:
                return response, target, internal
            response.close()
            try:
                current = target.url.join(URL(location))
            except (ValueError, TypeError) as exc:
                with _hidden_if(internal, target.host):
                    raise FetchFailed(
                        f"{target.host} redirected to a malformed URL", retryable=False
                    ) from exc
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                # What browsers do: the redirected request is a plain GET.
                method, data = "GET", None
        raise FetchFailed(f"more than {self.policy.max_redirects} redirects", retryable=False)

    async def _resolve(self, target: Target, *, timeout: float | None = None) -> list[IPAddress]:
        if target.literal is not None:
            return [target.literal]
        try:
            async with asyncio.timeout(timeout or self.policy.connect_timeout):
                return await self._resolver.resolve(target.host, target.port)
        except TimeoutError as exc:
            raise FetchFailed(f"timed out looking up {target.host}", retryable=True) from exc
        except socket.gaierror as exc:
            not_found = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
            message = (
                f"{target.host} not found" if not_found else f"could not look up {target.host}"
            )
            raise FetchFailed(message, retryable=not not_found) from exc
        except OSError as exc:
            raise FetchFailed(f"could not look up {target.host}", retryable=True) from exc

    async def _request(
        self,
        target: Target,
        addresses: list[IPAddress],
        method: str,
        data: bytes | None,
        extra_headers: Mapping[str, str] | None,
    ) -> aiohttp.ClientResponse:
        headers = {"User-Agent": self._user_agent, "Accept-Encoding": "identity"}
        headers.update(extra_headers or {})
        # Always the name the URL gave, whatever the caller passed: the server sees the
        # same virtual host the policy judged.
        headers["Host"] = target.host_header
        sni = target.host if target.url.scheme == "https" and target.literal is None else None
        failure: Exception | None = None
        with _translated_errors(target.host):
            for address in addresses[:_MAX_ADDRESS_ATTEMPTS]:
                try:
                    return await self.session.request(
                        method,
                        target.url.with_host(str(address)),
                        data=data,
                        headers=headers,
                        allow_redirects=False,
                        raise_for_status=False,
                        timeout=self._timeout,
                        server_hostname=sni,
                        middlewares=(),
                    )
                except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                    # Only a failure to connect moves on to the next address; a server
                    # that accepted the connection and then misbehaved has answered.
                    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
                        raise
                    failure = exc
            assert failure is not None  # check_addresses refuses an empty list
            raise failure


async def _open_body(
    response: aiohttp.ClientResponse,
    target: Target,
    limit: int,
    accept: Collection[str] | None,
    chunk_size: int,
    internal: bool,
) -> FetchStream:
    status = response.status
    if status >= 400:
        raise FetchFailed(
            f"{target.host} answered HTTP {status}",
            retryable=status >= 500 or status in _RETRYABLE_STATUSES,
            http_status=status,
        )
    if status >= 300:
        raise FetchFailed(
            f"{target.host} answered HTTP {status} without a usable redirect",
            retryable=False,
            http_status=status,
        )
    announced = response.content_length
    if announced is not None and announced > limit:
        raise FetchTooLarge(
            f"{target.host} sends {announced:,} bytes, more than the limit of {limit:,}",
            limit=limit,
        )
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = await response.content.read(SNIFF_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    if len(head) > limit:
        raise _too_large(target.host, limit)
    mime = sniff_mime(head)
    _check_accept(accept, mime, target.host)
    return FetchStream(
        status=status,
        final_url=str(target.url),
        headers=response.headers,
        mime=mime,
        head=head,
        rest=_body_chunks(response, target.host, chunk_size, internal),
        limit=limit,
        host=target.host,
    )


async def _body_chunks(
    response: aiohttp.ClientResponse, host: str, chunk_size: int, internal: bool
) -> AsyncGenerator[bytes, None]:
    with _hidden_if(internal, host), _translated_errors(host):
        async for chunk in response.content.iter_chunked(chunk_size):
            yield chunk


def _data_url_stream(url: str, limit: int, accept: Collection[str] | None) -> FetchStream:
    meta, comma, payload = url[5:].partition(",")
    if not comma:
        raise UrlRefused("malformed data: URL")
    params = [p.strip() for p in meta.split(";")]
    declared = params[0] or "text/plain"
    if params[-1].lower() == "base64":
        compact = "".join(unquote_to_bytes(payload).decode("ascii", "replace").split())
        if len(compact) * 3 // 4 > limit + 2:
            raise _too_large("the data: URL", limit)
        try:
            body = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FetchFailed("the data: URL is not valid base64", retryable=False) from exc
    else:
        body = unquote_to_bytes(payload)
    if len(body) > limit:
        raise _too_large("the data: URL", limit)
    mime = sniff_mime(body[:SNIFF_BYTES])
    _check_accept(accept, mime, "the data: URL")
    headers = CIMultiDict({"Content-Type": declared, "Content-Length": str(len(body))})
    return FetchStream(
        status=200,
        # The payload may be megabytes: the URL is reported without it.
        final_url=f"data:{meta},",
        headers=CIMultiDictProxy(headers),
        mime=mime,
        head=body,
        rest=_no_chunks(),
        limit=limit,
        host="the data: URL",
    )


async def _no_chunks() -> AsyncGenerator[bytes, None]:
    return
    yield  # pragma: no cover - makes this an async generator


def _check_accept(accept: Collection[str] | None, mime: str | None, source: str) -> None:
    if accept is None:
        return
    if mime is not None and any(_mime_matches(pattern, mime) for pattern in accept):
        return
    found = mime or "unrecognised data"
    if accept and all(pattern.startswith("image/") for pattern in accept):
        raise NotAnImage(f"{source} did not send an image (got {found})", mime=mime)
    raise UnexpectedContentType(
        f"{source} sent {found}, expected {', '.join(sorted(accept))}", mime=mime
    )


def _mime_matches(pattern: str, mime: str) -> bool:
    pattern = pattern.lower()
    if pattern in ("*/*", mime):
        return True
    return pattern.endswith("/*") and mime.startswith(pattern[:-1])


def _too_large(source: str, limit: int) -> FetchTooLarge:
    return FetchTooLarge(f"{source} sends more than the limit of {limit:,} bytes", limit=limit)


@contextmanager
def _hidden_if(internal: bool, host: str) -> Iterator[None]:
    """For an internal target, any ``FetchFailed`` as one sentence; the detail is logged."""
    try:
        yield
    except FetchFailed as exc:
        if not internal:
            raise
        log.warning("fetch from internal address %s failed: %s", host, exc.message)
        raise FetchFailed(
            f"could not fetch from {host}", retryable=exc.retryable, http_status=exc.http_status
        ) from exc


@contextmanager
def _translated_errors(host: str) -> Iterator[None]:
    """aiohttp's and the OS's exceptions as ``FetchError``s that say who failed and how."""
    try:
        yield
    except FetchError:
        raise
    except aiohttp.ConnectionTimeoutError as exc:
        raise FetchFailed(f"timed out connecting to {host}", retryable=True) from exc
    except TimeoutError as exc:
        raise FetchFailed(f"timed out waiting for {host}", retryable=True) from exc
    except aiohttp.InvalidURL as exc:
        raise UrlRefused("malformed URL") from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        raise FetchFailed(f"{host} has an invalid TLS certificate", retryable=False) from exc
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        raise FetchFailed(f"could not connect to {host}: {reason}", retryable=True) from exc
    except aiohttp.ClientPayloadError as exc:
        raise FetchFailed(f"{host} broke off the transfer", retryable=True) from exc
    except aiohttp.ClientResponseError as exc:
        raise FetchFailed(f"{host} sent an invalid HTTP answer", retryable=False) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise FetchFailed(f"connection to {host} failed", retryable=True) from exc
