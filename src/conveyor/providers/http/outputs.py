"""Turning what a provider returned into a ``ModelOutput``: stored files, text, JSON, cost.

A file result may be an http(s) URL (downloaded by the asset store, SSRF-checked), a
``data:`` URL, or bare base64 (seed 001 lists all three for the same field): each becomes
a stored asset whose MIME type the store sniffs from the bytes, never from the provider's
word. A binary answer (OpenAI speech) is stored as it is.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from conveyor.errors import ConveyorError
from conveyor.providers.base import AssetIO, StoredFile
from conveyor.providers.errors import PermanentProviderError, RetryableProviderError
from conveyor.providers.extract import MISSING, Extracted, parse_json_text, parse_path
from conveyor.providers.spec import PriceSpec

__all__ = [
    "compute_cost",
    "decode_base64",
    "describe_answer",
    "json_or_none",
    "store_bytes",
    "store_extracted",
    "store_value",
]

_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


def decode_base64(text: str) -> bytes | None:
    """Bytes of bare (standard or URL-safe) base64, or None when it is not base64."""
    compact = "".join(text.split())
    # Short words ("none", "error") are never files, even when they decode.
    if len(compact) < 16 or not _BASE64.match(compact):
        return None
    compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


async def store_value(value: str, files: AssetIO, *, provider: str, where: str) -> StoredFile:
    """Store one result value: http(s) URL, ``data:`` URL, or bare base64."""
    text = value.strip()
    lowered = text[:8].lower()
    if lowered.startswith(("http://", "https://", "data:")):
        return await _guard(files.store_from_url(text), provider=provider)
    data = decode_base64(text)
    if data is None:
        shown = text if len(text) <= 60 else text[:59] + "…"
        raise PermanentProviderError(
            f"{provider}: result at {where} is neither a URL nor base64: {shown!r}",
            provider=provider,
        )
    return await store_bytes(data, files, provider=provider)


async def store_bytes(
    data: bytes, files: AssetIO, *, provider: str, mime_type: str | None = None
) -> StoredFile:
    return await _guard(files.store(data, mime_type=mime_type), provider=provider)


async def _guard(pending: Any, *, provider: str) -> StoredFile:
    try:
        stored: StoredFile = await pending
    except ConveyorError:
        raise
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        # The task is done at the provider and its state is saved: a retry re-reads it.
        raise RetryableProviderError(
            f"{provider}: could not download the result: {exc or type(exc).__name__}",
            provider=provider,
        ) from None
    except ValueError as exc:
        raise PermanentProviderError(
            f"{provider}: the result could not be stored: {exc}", provider=provider
        ) from None
    return stored


async def store_extracted(
    extracted: Extracted, files: AssetIO, *, provider: str
) -> list[StoredFile]:
    values = extracted.value if isinstance(extracted.value, list) else [extracted.value]
    stored: list[StoredFile] = []
    for i, value in enumerate(values):
        where = extracted.path if len(values) == 1 else f"{extracted.path} (item {i})"
        stored.append(await store_value(value, files, provider=provider, where=where))
    return stored


def json_or_none(text: str) -> Any:
    """The JSON in ``text`` (code fences allowed) when it is an object or array."""
    parsed = parse_json_text(text)
    return parsed if isinstance(parsed, dict | list) else None


def compute_cost(
    price: PriceSpec | None, variables: Mapping[str, Any], answer: Any, *, files: int = 0
) -> float | None:
    """The price rule applied to this call (``files``: how many files were stored from its
    answer); None when there is no rule or the rule's unit is unknown."""
    if price is None:
        return None
    if price.per_call is not None:
        return price.per_call
    if price.per_file is not None:
        return round(price.per_file * files, 6)
    assert price.per_unit is not None
    units: Any = MISSING
    if price.unit is not None:
        units = variables.get(price.unit, MISSING)
    elif price.unit_path is not None:
        units = parse_path(price.unit_path).get(answer)
    if isinstance(units, str):
        try:
            units = float(units.strip().rstrip("s"))
        except ValueError:
            return None
    if isinstance(units, bool) or not isinstance(units, int | float):
        return None
    return round(price.per_unit * float(units), 6)


def describe_answer(answer: Any, limit: int = 300) -> str:
    text = json.dumps(answer, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
