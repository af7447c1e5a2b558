"""The rules ``jobs.inputs`` reads from the shipped models, and the URL host check: what is
required where (a submit placeholder with no default; a local field marked required), text
a local engine coerces, and host names resolved as the fetcher would (a static table here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from conveyor.jobs.inputs import (
    FileRef,
    InputRules,
    check_model_items,
    input_rules,
    vet_urls,
)
from conveyor.net import SafeFetcher, StaticResolver, UrlPolicy
from conveyor.net.errors import PRIVATE_URL_HINT
from conveyor.providers.http import HttpOverrides, build_http_adapters, load_specs
from conveyor.providers.local.adapter import LocalModelAdapter
from conveyor.providers.local.catalogue import local_models


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def remote_rules(session: aiohttp.ClientSession, model_id: str) -> InputRules:
    adapters = build_http_adapters(await load_specs(), session, HttpOverrides(env={}))
    [adapter] = [a for a in adapters if a.model_id == model_id]
    rules = input_rules(adapter)
    assert rules is not None
    return rules


def local_rules(model_id: str) -> InputRules:
    [spec] = [s for s in local_models() if s.id == model_id]
    rules = input_rules(LocalModelAdapter(spec, cpu=None))  # type: ignore[arg-type]
    assert rules is not None
    return rules


def faults(items: list[dict[str, Any]], *chain: InputRules) -> dict[str, str]:
    checked = check_model_items(items, chain, UrlPolicy())
    return {f.loc: f.msg for f in checked.faults}


async def test_a_remote_input_is_required_when_the_template_needs_it_and_nothing_fills_it(
    session: aiohttp.ClientSession,
) -> None:
    vision = await remote_rules(session, "openai/vision")
    required = {name for name, rule in vision.fields.items() if rule.required}
    # images is "$each: images?", the system prompt and detail have defaults.
    assert required == {"prompt"}
    # A default the client may override (the chat model's name) is not unknown.
    assert faults([{"prompt": "hi", "model": "gpt-4o"}], vision) == {}
    assert faults([{"prompt": "hi", "images": {"asset_id": "a"}}], vision) == {
        "items[0].inputs.images": (
            'must be a list of files: a file is {"asset_id": "..."} or {"url": "https://..."}'
        )
    }
    checked = check_model_items(
        [{"prompt": "hi", "images": [{"asset_id": "a"}, {"url": "https://cdn.example/b.png"}]}],
        [vision],
        UrlPolicy(),
    )
    assert checked.faults == []
    assert [(f.loc, f.asset_id, f.url) for f in checked.files] == [
        ("items[0].inputs.images[0]", "a", None),
        ("items[0].inputs.images[1]", None, "https://cdn.example/b.png"),
    ]


def test_a_local_field_is_held_to_the_engine_s_own_coercion() -> None:
    tts = local_rules("local/tts")
    assert faults([{"text": "hello", "rate": "150"}], tts) == {}  # forms send numbers as text
    found = faults([{"rate": "fast"}, {"text": "hi", "voice": "robot"}], tts)
    assert found["items[0].inputs.text"] == "required"
    assert found["items[0].inputs.rate"].startswith("must be a number")
    assert found["items[1].inputs.voice"].startswith("must be one of")
    assert faults([{"text": "hi", "txt": "x"}], tts) == {
        "items[0].inputs.txt": (
            f"not an input of local/tts (it takes: {', '.join(sorted(tts.fields))}); "
            "did you mean 'text'?"
        )
    }


def test_unknown_names_are_allowed_where_a_model_of_the_chain_declares_nothing() -> None:
    tts = local_rules("local/tts")
    assert check_model_items([{"text": "hi", "extra": 1}], [tts, None], UrlPolicy()).faults == []
    assert (
        check_model_items(
            [{"text": "hi", "extra": 1}], [tts], UrlPolicy(), reject_unknown=False
        ).faults
        == []
    )


async def test_hosts_are_judged_by_the_addresses_they_resolve_to(
    session: aiohttp.ClientSession,
) -> None:
    resolver = StaticResolver(
        {
            "images.internal": "10.0.0.5",
            "cdn.example": "93.184.215.14",
            "metadata.example": "169.254.169.254",
        }
    )
    fetcher = SafeFetcher(session, UrlPolicy(), resolver=resolver)
    refs = [
        FileRef("items[0].inputs.image", 0, url="https://images.internal/a.png"),
        FileRef("items[1].inputs.image", 1, url="https://cdn.example/b.png"),
        FileRef("items[2].inputs.image", 2, url="http://metadata.example/latest"),
        # Not found from here: the provider may see it (split DNS); not ours to refuse.
        FileRef("items[3].inputs.image", 3, url="https://elsewhere.example/c.png"),
        FileRef("items[4].inputs.image", 4, url="https://images.internal/other.png"),
        FileRef("items[5].inputs.image", 5, asset_id="stored"),
    ]
    found = {f.loc: f.msg for f in await vet_urls(refs, fetcher)}
    assert found == {
        "items[0].inputs.image": "URL refused: images.internal resolves to a private address "
        f"10.0.0.5 ({PRIVATE_URL_HINT})",
        "items[2].inputs.image": "URL refused: metadata.example resolves to a link-local "
        f"(cloud metadata) address 169.254.169.254 ({PRIVATE_URL_HINT})",
        "items[4].inputs.image": "URL refused: images.internal resolves to a private address "
        f"10.0.0.5 ({PRIVATE_URL_HINT})",
    }
    # One lookup per host, however many of its URLs a batch names.
    assert sorted(resolver.lookups) == [
        "cdn.example",
        "elsewhere.example",
        "images.internal",
        "metadata.example",
    ]
