"""The dry run: the submit request a model would send for given inputs, never sent.

``HttpModelAdapter.prepare_submit`` builds it with the very code a real call uses (defaults,
input checks, templates, provider headers, idempotency, auth), so the two cannot drift. What
is shown differs from what is sent only where it must: the API key wherever it appears, and
any header or query parameter whose name says it holds a secret, are masked (``Bearer ***``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from yarl import URL

from conveyor.providers.http.adapter import HttpModelAdapter
from conveyor.providers.http.transport import PreparedRequest

__all__ = ["MASK", "DryRun", "dry_run"]

MASK: Final = "***"
_SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|password|cookie", re.I)


@dataclass(frozen=True, slots=True)
class DryRun:
    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    body: Any
    simulated: bool


def dry_run(
    adapter: HttpModelAdapter, inputs: Mapping[str, Any], *, idempotency_key: str = "dry-run"
) -> DryRun:
    """The masked submit request of ``adapter`` for ``inputs`` (file inputs as URL strings)."""
    request = adapter.prepare_submit(inputs, idempotency_key=idempotency_key)
    secrets = [adapter.api_key] if adapter.api_key else []
    return _masked(request, secrets, simulated=adapter.simulated)


def _masked(request: PreparedRequest, secrets: list[str], *, simulated: bool) -> DryRun:
    headers = {name: _hide(value, secrets) for name, value in request.headers.items()}
    for name, value in headers.items():
        if _SECRET_HEADER.search(name) and MASK not in value:
            headers[name] = MASK
    if request.body is not None:
        # What the HTTP client adds for a JSON body.
        headers.setdefault("Content-Type", "application/json")
    query = {name: _hide(value, secrets) for name, value in request.params.items()}
    for name, value in query.items():
        if _SECRET_HEADER.search(name) and MASK not in value:
            query[name] = MASK
    url = URL(_hide(request.url, secrets))
    if query:
        url = url.update_query(query)
    return DryRun(
        method=request.method,
        url=str(url),
        headers=headers,
        query=query,
        body=_hide_in(request.body, secrets),
        simulated=simulated,
    )


def _hide(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _hide_in(value: Any, secrets: list[str]) -> Any:
    if not secrets or value is None:
        return value
    # A key pasted into a body template is masked too: walk the JSON as text once.
    text = json.dumps(value, ensure_ascii=False)
    if not any(json.dumps(s, ensure_ascii=False)[1:-1] in text for s in secrets):
        return value
    for secret in secrets:
        text = text.replace(json.dumps(secret, ensure_ascii=False)[1:-1], MASK)
    return json.loads(text)
