"""One API call described once, sent by either transport.

A ``Call`` says everything about a request and its answer: method, path, the keyword
arguments of ``httpx``'s ``build_request`` (params, json, files, headers, timeout), which
statuses are answers, how any other status becomes an exception, and how an answer is
decoded. The request builders of each API return ``Call`` values; ``SyncCaller`` and
``AsyncCaller`` are the only code that differs between the synchronous and asynchronous
clients, and they differ only in ``httpx.Client`` versus ``httpx.AsyncClient`` (whose
``build_request`` is the same code, as httpx shares request building between the two).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

import httpx

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """A request and the rule for reading its answer."""

    method: str
    path: str
    decode: Callable[[httpx.Response], T]
    error: Callable[[httpx.Response], Exception]
    options: Mapping[str, Any] = field(default_factory=dict)
    # Statuses that are answers; ``None`` means every status below 400.
    expect: frozenset[int] | None = None

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request(self.method, self.path, **self.options)

    def is_answer(self, response: httpx.Response) -> bool:
        if self.expect is None:
            return response.status_code < 400
        return response.status_code in self.expect

    def read(self, response: httpx.Response) -> T:
        """The decoded answer, or the API's exception for any other status."""
        if not self.is_answer(response):
            raise self.error(response)
        return self.decode(response)


class SyncCaller:
    """Sends ``Call`` values over an ``httpx.Client``; ``with`` closes its connections."""

    def __init__(self, http: httpx.Client) -> None:
        """Send over ``http``, which this caller closes."""
        self._http = http

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        return call.read(self._http.send(call.build(self._http)))

    @contextmanager
    def _stream(self, call: Call[Any]) -> Iterator[httpx.Response]:
        """The answer with its body unread; an error status raises once its body is read."""
        response = self._http.send(call.build(self._http), stream=True)
        try:
            if not call.is_answer(response):
                response.read()
                raise call.error(response)
            yield response
        finally:
            response.close()


class AsyncCaller:
    """Sends ``Call`` values over an ``httpx.AsyncClient``; ``async with`` closes it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        """Send over ``http``, which this caller closes."""
        self._http = http

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        return call.read(await self._http.send(call.build(self._http)))

    @asynccontextmanager
    async def _stream(self, call: Call[Any]) -> AsyncIterator[httpx.Response]:
        """The answer with its body unread; an error status raises once its body is read."""
        response = await self._http.send(call.build(self._http), stream=True)
        try:
            if not call.is_answer(response):
                await response.aread()
                raise call.error(response)
            yield response
        finally:
            await response.aclose()
