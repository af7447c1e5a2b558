"""The dry run is the real submit request, masked: run a call against a fake provider and
compare what arrived with what the dry run showed for the same inputs."""

from __future__ import annotations

import aiohttp
import pytest
from provider_fakes import (
    Checkpoints,
    FakeProvider,
    Reply,
    make_adapter,
    make_call,
    make_spec,
)

from conveyor.core.clock import ManualClock
from conveyor.execution.files import ItemFiles
from conveyor.providers.errors import PermanentProviderError
from conveyor.providers.http.dry_run import MASK, dry_run


async def test_the_dry_run_shows_what_a_real_call_sends_with_secrets_masked(
    provider: FakeProvider, session: aiohttp.ClientSession, clock: ManualClock, files: ItemFiles
) -> None:
    spec = make_spec(
        {"headers": {"X-Client-Token": "literal-token", "X-Team": "blue"}},
        model={
            "inputs": {"size": {"type": "integer"}},
            "submit": {
                "query": {"size": "{{size}}", "api_key": "k-123"},
                "body": {"prompt": "{{prompt}}", "width": "{{width}}", "echo": "k-123 here"},
            },
            "idempotency": {"header": "Idempotency-Key"},
        },
    )
    provider.on("POST", "/tasks", Reply(json={"id": "t1", "status": "failed", "error": "no"}))
    adapter = make_adapter(spec, provider, session, clock)
    inputs = {"prompt": "a red fox", "size": 3}

    shown = dry_run(adapter, inputs, idempotency_key="step-run-42")
    assert provider.requests == []  # nothing was sent

    # The scripted task fails; only its submit request matters here.
    with pytest.raises(PermanentProviderError):
        await adapter.run(make_call(files, inputs), resume=None, checkpoint=Checkpoints())
    (sent,) = provider.calls("POST", "/tasks")
    assert shown.method == "POST"
    assert shown.url == f"{provider.base_url}/tasks?size=3&api_key=***"
    assert sent.query == {"size": "3", "api_key": "k-123"}
    assert shown.body == {"prompt": "a red fox", "width": 512, "echo": f"{MASK} here"}
    assert sent.json == {"prompt": "a red fox", "width": 512, "echo": "k-123 here"}
    assert shown.headers == {
        "X-Client-Token": MASK,
        "X-Team": "blue",
        "Idempotency-Key": "step-run-42",
        "Authorization": f"Bearer {MASK}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    for name, value in shown.headers.items():
        real = sent.headers[name.lower()]
        assert value == real or MASK in value, name
    assert sent.headers["authorization"] == "Bearer k-123"
    assert shown.simulated is False
