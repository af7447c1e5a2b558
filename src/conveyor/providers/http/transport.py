"""One HTTP request to a provider, and what its answer means.

``ProviderCaller.send`` makes a single attempt under the provider's limits, with a
per-request timeout that covers the body, and a cap on the bytes it will read: a provider
that answers slowly, endlessly or with a gigabyte of HTML costs one timeout, never a hang
or an out-of-memory. The answer is classified here, once, into the error tree:

=====================================  ==========================================
what came back                         raised
=====================================  ==========================================
connection refused/reset, timeout      ``RetryableProviderError``
429                                    ``RateLimited`` (``retry_after`` from the header)
5xx, 408, spec ``errors.retryable``    ``RetryableProviderError``
401/402/403, other 4xx                 ``PermanentProviderError`` + the spec's meaning
2xx that is not the JSON promised      ``UnreadableAnswer`` (permanent)
more bytes than ``max_response_bytes``  ``UnreadableAnswer`` (permanent)
=====================================  ==========================================

Whether a 404 or an unreadable answer is worth another poll is the poll loop's decision;
``send_retrying`` retries the retryable ones a bounded number of times for one-shot
requests (submit, result fetch, cancel).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from conveyor.providers.errors import (
    PermanentProviderError,
    ProviderError,
    RateLimited,
    RetryableProviderError,
)
from conveyor.providers.extract import ErrorExtractor, message_text, parse_path
from conveyor.providers.limits import ProviderLimits, parse_retry_after
from conveyor.providers.spec import ProviderSpec

__all__ = [
    "PreparedRequest",
    "ProviderAnswer",
    "ProviderCaller",
    "UnreadableAnswer",
    "snippet",
]

logger = logging.getLogger("conveyor.providers.http")

_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


class UnreadableAnswer(PermanentProviderError):
    """A 2xx answer that is not what the spec promised (HTML, empty, too big)."""

    code = "PROVIDER_BAD_ANSWER"


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A rendered request, ready to send."""

    purpose: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    expect: Literal["json", "binary", "none"] = "json"


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    data: Any = None
    content_type: str = ""
    # True when the body itself is the output (speech audio), not JSON to read paths in.
    binary: bool = False


def snippet(body: bytes | str, limit: int = 200) -> str:
    """A short, readable excerpt of an answer for error messages (tags and runs of
    whitespace removed)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = _SPACES.sub(" ", _TAGS.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ProviderCaller:
    """Sends prepared requests to one provider and classifies what comes back."""

    def __init__(
        self,
        spec: ProviderSpec,
        session: aiohttp.ClientSession,
        limits: ProviderLimits,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.session = session
        self.limits = limits
        self._rng = rng or random.Random()
        self._errors = ErrorExtractor(spec.errors.paths)
        self._permanent_if = [
            (parse_path(path), {v.lower() for v in values})
            for path, values in spec.errors.permanent_if.items()
        ]
        envelope = spec.errors.envelope
        self._envelope_ok = frozenset(envelope.ok) if envelope else frozenset()
        self._envelope_code = parse_path(envelope.code_path) if envelope else None
        self._envelope_message = (
            parse_path(envelope.message_path) if envelope and envelope.message_path else None
        )

    async def send_retrying(self, request: PreparedRequest) -> ProviderAnswer:
        """``send`` with bounded retries of retryable failures (backoff with jitter)."""
        limits = self.spec.limits
        attempt = 0
        while True:
            try:
                return await self.send(request)
            except RetryableProviderError as exc:
                attempt += 1
                if attempt > limits.retries:
                    raise
                delay = min(limits.retry_max_delay, limits.retry_base_delay * 2 ** (attempt - 1))
                delay = self._rng.uniform(delay / 2, delay)
                if exc.retry_after is not None:
                    if exc.retry_after > limits.retry_max_delay:
                        # Holding this call for minutes helps nobody: let the step be
                        # rescheduled with the provider's own delay.
                        raise
                    delay = max(delay, exc.retry_after)
                logger.info(
                    "%s %s failed (%s); retry %d/%d in %.1f s",
                    self.spec.name,
                    request.purpose,
                    exc.message,
                    attempt,
                    limits.retries,
                    delay,
                )
                await self.limits.clock.sleep(delay)

    async def send(self, request: PreparedRequest) -> ProviderAnswer:
        """One attempt; returns a 2xx answer or raises a classified ``ProviderError``."""
        async with self.limits.slot() as slot:
            try:
                status, headers, body = await self._exchange(request)
            except UnreadableAnswer:
                slot.record("server_error")
                raise
            except TimeoutError:
                slot.record("timeout")
                raise self._retryable(
                    request, f"no answer within {self.spec.limits.timeout:g} s"
                ) from None
            except aiohttp.InvalidURL as exc:
                slot.record("client_error")
                raise PermanentProviderError(
                    f"{self.spec.title}: invalid URL for {request.purpose}: {exc}",
                    provider=self.spec.name,
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                slot.record("connection_error")
                reason = str(exc) or type(exc).__name__
                raise self._retryable(request, f"connection failed: {reason}") from None
            try:
                answer = self._interpret(request, status, headers, body)
            except RateLimited:
                slot.record("rate_limited")
                raise
            except RetryableProviderError:
                slot.record("server_error")
                raise
            except UnreadableAnswer:
                slot.record("server_error")
                raise
            except ProviderError:
                slot.record("client_error")
                raise
            slot.record("success")
            return answer

    async def _exchange(self, request: PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        limit = self.spec.limits.max_response_bytes
        timeout = self.spec.limits.timeout
        kwargs: dict[str, Any] = {}
        if request.body is not None:
            kwargs["json"] = request.body
        # The outer timeout also bounds a body that trickles in byte by byte.
        async with asyncio.timeout(timeout):
            async with self.session.request(
                request.method,
                request.url,
                headers=request.headers,
                params=request.params or None,
                timeout=aiohttp.ClientTimeout(total=timeout),
                **kwargs,
            ) as response:
                headers = {k.lower(): v for k, v in response.headers.items()}
                declared = response.content_length
                if declared is not None and declared > limit:
                    raise self._too_big(request, declared)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise self._too_big(request, size)
                    chunks.append(chunk)
                return response.status, headers, b"".join(chunks)

    def _too_big(self, request: PreparedRequest, size: int) -> UnreadableAnswer:
        return UnreadableAnswer(
            f"{self.spec.title}: {request.purpose} answer is larger than "
            f"{self.spec.limits.max_response_bytes} bytes (at least {size}); not read",
            provider=self.spec.name,
        )

    def _retryable(self, request: PreparedRequest, reason: str) -> RetryableProviderError:
        return RetryableProviderError(
            f"{self.spec.title}: {request.purpose} {reason}", provider=self.spec.name
        )

    def _interpret(
        self, request: PreparedRequest, status: int, headers: dict[str, str], body: bytes
    ) -> ProviderAnswer:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        data = _decode_json(body)
        if 200 <= status < 300 and self._envelope_code is not None and data is not _NOT_JSON:
            code = self._envelope_code.get(data)
            if isinstance(code, int | str) and str(code).strip().lstrip("-").isdigit():
                inner = int(code)
                if inner not in self._envelope_ok:
                    status = inner
        if not 200 <= status < 300:
            raise self._http_error(request, status, headers, body, data)
        if request.expect == "binary":
            if not body:
                raise UnreadableAnswer(
                    f"{self.spec.title}: {request.purpose} answer is empty",
                    provider=self.spec.name,
                    http_status=status,
                )
            return ProviderAnswer(status, headers, body, None, content_type, binary=True)
        if request.expect == "none":
            return ProviderAnswer(status, headers, body, None if data is _NOT_JSON else data)
        if data is _NOT_JSON:
            kind = content_type or "no content type"
            what = "an empty answer" if not body.strip() else f"{kind}: {snippet(body)!r}"
            raise UnreadableAnswer(
                f"{self.spec.title}: {request.purpose} answer is not JSON ({what})",
                provider=self.spec.name,
                http_status=status,
            )
        return ProviderAnswer(status, headers, body, data, content_type)

    def _http_error(
        self,
        request: PreparedRequest,
        status: int,
        headers: dict[str, str],
        body: bytes,
        data: Any,
    ) -> ProviderError:
        errors = self.spec.errors
        said = None
        if data is not _NOT_JSON:
            if self._envelope_message is not None:
                said = message_text(self._envelope_message.get(data))
            said = said or self._errors.message(data)
        elif body.strip():
            said = snippet(body)
        meaning = errors.messages.get(status)
        parts = [meaning] if meaning else []
        parts.append(f"HTTP {status}" + (f": {said}" if said else ""))
        message = f"{self.spec.title}: {request.purpose} failed: " + (
            f"{parts[0]} ({parts[1]})" if meaning else parts[0]
        )
        if status == 401 and self.spec.auth.key_env:
            # The one thing that fixes it: where this server reads the key from.
            message += f"; check the API key in {' or '.join(self.spec.auth.key_env)}"
        name = self.spec.name
        if data is not _NOT_JSON and self._means_permanent(data):
            return PermanentProviderError(message, provider=name, http_status=status)
        if status == 429:
            delay = parse_retry_after(headers.get("retry-after"), now=self.limits.clock.now())
            if delay is not None:
                self.limits.pause(delay)
            return RateLimited(message, provider=name, http_status=status, retry_after=delay)
        if status in errors.permanent:
            return PermanentProviderError(message, provider=name, http_status=status)
        if status in errors.retryable or status >= 500 or status == 408:
            delay = parse_retry_after(headers.get("retry-after"), now=self.limits.clock.now())
            return RetryableProviderError(
                message, provider=name, http_status=status, retry_after=delay
            )
        return PermanentProviderError(message, provider=name, http_status=status)

    def _means_permanent(self, data: Any) -> bool:
        for path, values in self._permanent_if:
            found = path.get(data)
            if isinstance(found, str | int) and str(found).lower() in values:
                return True
        return False


_NOT_JSON: Any = object()


def _decode_json(body: bytes) -> Any:
    if not body.strip():
        return _NOT_JSON
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON
