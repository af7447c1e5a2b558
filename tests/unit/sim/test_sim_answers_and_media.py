"""Pure pieces: how chat answers are derived, how sizes and kinds are read, merge patches."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.sim.chat_answers import (
    Conversation,
    language_code,
    mark_translated,
    read_conversation,
    translation_target,
)
from conveyor.sim.config import SimConfig, merge_patch
from conveyor.sim.media import capped_size, media_kind_for, plan_outputs, requested_size


def conversation(system: str = "", user: str = "") -> Conversation:
    return Conversation(system_text=system, user_text=user, image_count=0)


@pytest.mark.parametrize(
    ("system", "user", "code"),
    [
        ("Translate the following text to German.", "<p>x</p>", "de"),
        ("You are a translator. Translate from English into Russian.", "x", "ru"),
        ("Translate it to pt-BR", "x", "pt-br"),
        ("", "Translate the text below to the Spanish language:\nhello", "es"),
        ("Translate. target_language: uk", "x", "uk"),
        ("Переведи текст на немецкий", "x", "de"),
        ("Describe the damage to the car.", "x", None),
        ("Translate it well.", "x", None),
    ],
)
def test_translation_target(system: str, user: str, code: str | None) -> None:
    assert translation_target(conversation(system, user)) == code


def test_language_code_refuses_ordinary_words() -> None:
    assert language_code("the") is None
    assert language_code("German") == "de"
    assert language_code("fr") == "fr"


_TEXT = st.text(alphabet=st.characters(blacklist_characters="<>"), min_size=1, max_size=20)
_TAG = st.sampled_from(["<p>", "</p>", "<b>", "</b>", "<ul>", "<li>", "</li>", "<br/>"])


@given(st.lists(st.one_of(_TEXT, _TAG), max_size=12), st.sampled_from(["de", "ru", "pt-br"]))
def test_marking_keeps_every_tag_and_only_adds_markers(pieces: list[str], code: str) -> None:
    source = "".join(pieces)
    marked = mark_translated(source, code)
    assert re.findall(r"<[^>]*>", marked) == re.findall(r"<[^>]*>", source)
    assert marked.replace(f"[{code}] ", "") == source
    runs = [run for run in re.split(r"<[^>]*>", source) if run.strip()]
    assert marked.count(f"[{code}] ") == len(runs) + source.count(f"[{code}] ")


def test_read_conversation_counts_images_across_messages() -> None:
    image = {"type": "image_url", "image_url": {"url": "u"}}
    result = read_conversation(
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "first"}, image]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, image, image]},
        ]
    )
    assert (result.system_text, result.user_text, result.image_count) == ("sys", "second", 3)


@pytest.mark.parametrize(
    ("inputs", "size"),
    [
        ({"width": 992, "height": 992}, (992, 992)),
        ({"width": "640", "height": "480"}, (640, 480)),
        ({"size": "1536x1024"}, (1536, 1024)),
        ({"size": "auto"}, (1024, 1024)),
        ({"image_size": "portrait_16_9"}, (576, 1024)),
        ({"image_size": {"width": 300, "height": 200}}, (300, 200)),
        ({"aspect_ratio": "16:9"}, (1024, 576)),
        ({"aspect_ratio": "9:16"}, (576, 1024)),
        ({}, (1024, 1024)),
    ],
)
def test_requested_size(inputs: dict[str, Any], size: tuple[int, int]) -> None:
    assert requested_size(inputs) == size


@given(st.integers(1, 10_000), st.integers(1, 10_000), st.integers(8, 4096))
def test_capped_size_never_exceeds_the_cap(width: int, height: int, cap: int) -> None:
    capped = capped_size(width, height, cap)
    assert max(capped) <= max(cap, 1)
    assert min(capped) >= 1
    if max(width, height) <= cap:
        assert capped == (width, height)


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ("z-image", "image"),
        ("fal-ai/flux-kontext-lora", "image"),
        ("fal-ai/birefnet", "cutout"),
        ("bytedance/seedance-1.5-pro", "animation"),
        ("kling/v2-1-image-to-video", "animation"),
        ("elevenlabs/text-to-speech", "audio"),
        ("tts-1", "audio"),
    ],
)
def test_media_kind_for(model: str, kind: str) -> None:
    assert media_kind_for(model) == kind


def test_plan_outputs_respects_caps() -> None:
    config = SimConfig(max_outputs=2, max_image_side=100)
    outputs = plan_outputs(config, "z-image", {"width": 400, "height": 200}, owner_id="t", count=9)
    assert len(outputs) == 2
    assert {(spec.width, spec.height) for spec in outputs} == {(100, 50)}
    assert outputs[0].seed_text != outputs[1].seed_text


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}
    patch = {"a": None, "b": {"c": None, "x": 4}, "e": [2], "f": {"g": None, "h": 5}}
    assert merge_patch(target, patch) == {"b": {"d": 3, "x": 4}, "e": [2], "f": {"h": 5}}
