"""OpenAI-compatible protocol: derived chat answers, images, speech, models, errors."""

from __future__ import annotations

import base64
import io
import json
import re
import wave
from typing import Any

import aiohttp
import pytest
from PIL import Image

from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator

AUTH = {"Authorization": "Bearer sim-key"}
IMAGE_PART = {"type": "image_url", "image_url": {"url": "https://example.com/car.jpg"}}


def v1(sim: RunningSimulator) -> str:
    return f"{sim.base_urls['openai']}/v1"


async def chat(
    http: aiohttp.ClientSession, sim: RunningSimulator, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{v1(sim)}/chat/completions", json={"model": "gpt-4o-mini", **body}, headers=AUTH
    ) as response:
        return response.status, await response.json()


def content_of(completion: dict[str, Any]) -> str:
    text: str = completion["choices"][0]["message"]["content"]
    return text


async def test_damage_answer_is_html_quoting_additional_info_and_counting_images(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    status, completion = await chat(
        http,
        sim,
        {
            "messages": [
                {"role": "system", "content": "You describe vehicle damage for auctions."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Additional info: 2021 BMW X5, front damage"},
                        IMAGE_PART,
                        IMAGE_PART,
                        IMAGE_PART,
                    ],
                },
            ]
        },
    )
    assert status == 200
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["total_tokens"] > 0
    answer = content_of(completion)
    assert "2021 BMW X5, front damage" in answer
    assert "3 images" in answer
    assert set(re.findall(r"</?(\w+)", answer)) <= {"p", "ul", "li", "b", "i", "br"}
    assert clock.monotonic() == pytest.approx(1010.0)  # the call waited its latency


async def test_damage_answer_escapes_html_in_the_notes(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    _, completion = await chat(
        http,
        sim,
        {
            "messages": [
                {"role": "user", "content": 'Describe the damage. {"additional_info": "<script>x"}'}
            ]
        },
    )
    answer = content_of(completion)
    assert "&lt;script&gt;x" in answer
    assert "<script>" not in answer


@pytest.mark.parametrize(
    ("instruction", "code"),
    [("Translate the HTML to German.", "de"), ("Translate into ru, keep tags.", "ru")],
)
async def test_translation_marks_the_target_language_and_keeps_tags(
    sim: RunningSimulator, http: aiohttp.ClientSession, instruction: str, code: str
) -> None:
    _, completion = await chat(
        http,
        sim,
        {
            "messages": [
                {"role": "system", "content": instruction},
                {
                    "role": "user",
                    "content": "<p>Front bumper <b>dented</b></p><ul><li>Hood</li></ul>",
                },
            ]
        },
    )
    answer = content_of(completion)
    assert answer == (
        f"<p>[{code}] Front bumper <b>[{code}] dented</b></p><ul><li>[{code}] Hood</li></ul>"
    )


async def test_translation_instruction_inside_the_user_message(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    _, completion = await chat(
        http,
        sim,
        {"messages": [{"role": "user", "content": "Translate to French:\n<p>Scratched door</p>"}]},
    )
    assert content_of(completion) == "<p>[fr] Scratched door</p>"


async def test_json_object_uses_the_keys_the_prompt_shows(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    prompt = (
        'Analyse the product. Answer JSON like {"category": "...", "brand": "...", '
        '"colors": [], "key_features": [], "recommended_prompt": "..."}'
    )
    _, completion = await chat(
        http,
        sim,
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": prompt}, IMAGE_PART]}
            ],
            "response_format": {"type": "json_object"},
        },
    )
    data = json.loads(content_of(completion))
    assert list(data) == ["category", "brand", "colors", "key_features", "recommended_prompt"]
    assert isinstance(data["colors"], list)
    assert isinstance(data["recommended_prompt"], str)


async def test_json_schema_answer_is_an_instance_of_the_schema(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["ok", "damaged"]},
            "parts": {"type": "array", "items": {"$ref": "#/$defs/part"}},
            "severity": {"type": "integer", "minimum": 1},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        },
        "required": ["verdict", "parts", "severity", "note"],
        "$defs": {"part": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    _, completion = await chat(
        http,
        sim,
        {
            "messages": [{"role": "user", "content": "assess"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "assessment", "schema": schema, "strict": True},
            },
        },
    )
    data = json.loads(content_of(completion))
    assert data["verdict"] == "ok"
    assert isinstance(data["parts"][0]["name"], str)
    assert data["severity"] == 1
    assert isinstance(data["note"], str)


async def test_plain_question_gets_an_echo(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    _, completion = await chat(http, sim, {"messages": [{"role": "user", "content": "Hello?"}]})
    assert "Hello?" in content_of(completion)


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "user", "content": "x"}], "stream": True},
    ],
)
async def test_bad_chat_requests_are_400_in_openai_shape(
    sim: RunningSimulator, http: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    status, answer = await chat(http, sim, body)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"]


async def test_no_balance_is_a_429_insufficient_quota(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{v1(sim)}/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": "Bearer sim-no-balance"},
    ) as response:
        assert response.status == 429
        assert "Retry-After" not in response.headers
        error = (await response.json())["error"]
    assert error["code"] == "insufficient_quota"


async def test_failure_rate_fails_calls_with_500(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config({"failure_rate": 1.0})
    status, answer = await chat(http, sim, {"messages": [{"role": "user", "content": "x"}]})
    assert status == 500
    assert answer["error"]["type"] == "server_error"


async def test_image_generation_b64_is_a_png_of_the_requested_size(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{v1(sim)}/images/generations",
        json={"model": "gpt-image-1", "prompt": "a lamp", "size": "256x128", "n": 2},
        headers=AUTH,
    ) as response:
        assert response.status == 200
        data = (await response.json())["data"]
    assert len(data) == 2
    image = Image.open(io.BytesIO(base64.b64decode(data[0]["b64_json"])))
    assert (image.format, image.size) == ("PNG", (256, 128))


async def test_image_generation_url_is_downloadable_and_counted(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{v1(sim)}/images/generations",
        json={"model": "dall-e-3", "prompt": "a lamp", "size": "64x64"},
        headers=AUTH,
    ) as response:
        url = (await response.json())["data"][0]["url"]
    async with http.get(url) as response:
        assert Image.open(io.BytesIO(await response.read())).size == (64, 64)
    assert sum(sim.counters()["downloads"].values()) == 1


async def test_speech_is_real_wav(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{v1(sim)}/audio/speech",
        json={
            "model": "tts-1",
            "input": "hello big world",
            "voice": "alloy",
            "response_format": "wav",
        },
        headers=AUTH,
    ) as response:
        assert response.status == 200
        assert response.content_type == "audio/wav"
        assert "X-Sim-Substituted-Format" not in response.headers
        body = await response.read()
    with wave.open(io.BytesIO(body)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            24000,
        )
        # One 0.12 s tone and a 0.04 s gap per word.
        assert reader.getnframes() == 3 * (2880 + 960)


async def test_speech_in_mp3_is_answered_as_wav_and_says_so(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{v1(sim)}/audio/speech", json={"model": "tts-1", "input": "hi"}, headers=AUTH
    ) as response:
        assert response.headers["X-Sim-Substituted-Format"] == "wav"
        assert (await response.read())[:4] == b"RIFF"


async def test_speech_pcm_is_raw_samples(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{v1(sim)}/audio/speech",
        json={"model": "tts-1", "input": "one two", "response_format": "pcm"},
        headers=AUTH,
    ) as response:
        body = await response.read()
    assert body[:4] != b"RIFF"
    assert len(body) % 2 == 0
    assert len(body) > 0


async def test_models_list_and_lookup(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{v1(sim)}/models", headers=AUTH) as response:
        listing = await response.json()
    assert listing["object"] == "list"
    assert "gpt-4o-mini" in [model["id"] for model in listing["data"]]
    async with http.get(f"{v1(sim)}/models/gpt-4o-mini", headers=AUTH) as response:
        assert response.status == 200
    async with http.get(f"{v1(sim)}/models/nope", headers=AUTH) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "model_not_found"
