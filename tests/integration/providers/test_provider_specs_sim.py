"""Every shipped provider spec, over real HTTP, against the simulator — quirks included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sim_support import (
    SIM_HOST,
    Checkpoints,
)

from conveyor.core.clock import ManualClock
from conveyor.execution.files import ItemFiles
from conveyor.net import UrlPolicy, UrlRefused
from conveyor.providers.base import FileInput, ModelCall, ModelOutput
from conveyor.providers.errors import (
    PermanentProviderError,
    ProviderCancelled,
    RetryableProviderError,
)
from conveyor.providers.http import HttpModelAdapter, HttpOverrides, build_http_adapters
from conveyor.providers.spec import IdempotencySpec, ProviderSpec
from conveyor.sim import RunningSimulator
from tests.support.item_files import content_of

PHOTO = FileInput(url="https://photos.example/product.jpg")


def adapter_for(
    specs: dict[str, ProviderSpec],
    model_id: str,
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    *,
    key: str = "sim-key",
    spec: ProviderSpec | None = None,
) -> HttpModelAdapter:
    provider = spec or specs[model_id.split("/", 1)[0]]
    overrides = HttpOverrides(simulate=True, simulator_url=simulator.base_url, simulator_key=key)
    adapters = build_http_adapters([provider], session, overrides, clock=clock)
    return next(a for a in adapters if a.model_id == model_id)


def call(files: ItemFiles, model_id: str, inputs: dict[str, Any], **kw: Any) -> ModelCall:
    return ModelCall(model_id, inputs, f"run-{model_id}", files, **kw)


async def run(
    adapter: HttpModelAdapter, files: ItemFiles, inputs: dict[str, Any], *, urgent: bool = False
) -> ModelOutput:
    return await adapter.run(
        call(files, adapter.model_id, inputs, urgent=urgent),
        resume=None,
        checkpoint=Checkpoints(),
    )


@pytest.fixture(autouse=True)
def never_a_wrong_endpoint(simulator: RunningSimulator) -> Any:
    yield
    counters = simulator.counters()
    assert counters["wrong_endpoints_total"] == 0, counters["wrong_endpoints"]


ROUND_TRIPS: list[tuple[str, dict[str, Any], str]] = [
    ("genapi/z-image", {"prompt": "a lighthouse at dusk"}, "image/png"),
    ("kie/seedance-1.5-pro", {"prompt": "waves roll in", "image": PHOTO}, "image/gif"),
    ("kie/seedream-4.5", {"prompt": "a teapot"}, "image/"),
    ("replicate/flux-schnell", {"prompt": "a fox"}, "image/png"),
    ("replicate/remove-background", {"image": PHOTO}, "image/png"),
    ("fal/flux-kontext-lora-v2", {"image": PHOTO, "prompt": "white background"}, "image/"),
    ("fal/flux-kontext-lora-v1", {"image": PHOTO, "prompt": "white background"}, "image/"),
    ("fal/birefnet", {"image": PHOTO}, "image/png"),
    ("openai/image", {"prompt": "a red bicycle"}, "image/"),
    ("openai/speech", {"text": "Hello there"}, "audio/wav"),
]


@pytest.mark.parametrize(("model_id", "inputs", "mime"), ROUND_TRIPS)
async def test_each_file_model_round_trips(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    model_id: str,
    inputs: dict[str, Any],
    mime: str,
) -> None:
    adapter = adapter_for(shipped_specs, model_id, simulator, session, clock)
    output = await run(adapter, files, inputs)
    (stored,) = output.files
    assert stored.mime_type.startswith(mime)
    assert stored.size > 0
    assert len(await content_of(files, stored)) == stored.size
    counters = simulator.counters()
    assert counters["submissions_total"] == 1


async def test_openai_vision_json_and_translation(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    vision = adapter_for(shipped_specs, "openai/vision", simulator, session, clock)
    output = await run(
        vision,
        files,
        {
            "prompt": 'Answer as JSON: {"category": "...", "brand": "..."}',
            "images": [PHOTO, FileInput(url="https://photos.example/2.jpg")],
            "response_format": {"type": "json_object"},
        },
    )
    assert isinstance(output.data, dict)
    assert {"category", "brand"} <= set(output.data)

    translate = adapter_for(shipped_specs, "openai/translate", simulator, session, clock)
    output = await run(
        translate, files, {"text": "<p>Front bumper</p>", "target_language": "German"}
    )
    assert output.text is not None
    assert "<p>" in output.text
    assert "[de]" in output.text


async def test_genapi_404_while_fresh_then_success_without_resubmitting(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    simulator.update_config({"not_found_polls": 3})
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock)
    output = await run(adapter, files, {"prompt": "x"})
    assert output.files[0].mime_type == "image/png"
    counters = simulator.counters()
    assert counters["not_found_polls"] == {"genapi": 3}
    assert counters["submissions_total"] == 1


@pytest.mark.parametrize(
    ("key", "status", "meaning"),
    [
        ("wrong-key", 401, "invalid API key"),
        ("sim-no-balance", 402, "insufficient balance, top up in your gen-api account"),
        ("sim-forbidden", 403, "access denied for this API key"),
    ],
)
async def test_genapi_401_402_403_fail_at_once_with_the_seed_meaning(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    key: str,
    status: int,
    meaning: str,
) -> None:
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock, key=key)
    with pytest.raises(PermanentProviderError) as caught:
        await run(adapter, files, {"prompt": "x"})
    assert caught.value.http_status == status
    assert meaning in caught.value.message
    counters = simulator.counters()
    assert counters["requests"] == {"genapi": 1}  # no retry
    assert counters["auth_failures"] == {"genapi": {str(status): 1}}


async def test_genapi_429_bursts_honour_retry_after(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    simulator.update_config(
        {"rate_limit_every": 1, "rate_limit_burst": 1, "retry_after_seconds": 4}
    )
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock)
    output = await run(adapter, files, {"prompt": "x"})
    assert output.files
    counters = simulator.counters()
    assert counters["rate_limited"]["genapi"] >= 2
    assert counters["submissions_total"] == 1
    assert sum(1 for pause in clock.sleeps if pause >= 4) >= counters["rate_limited"]["genapi"]


async def test_genapi_5xx_backs_off_and_still_finishes(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    simulator.update_config({"http_500_rate": 0.3, "seed": 7})
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock)
    for _ in range(3):
        assert (await run(adapter, files, {"prompt": "x"})).files
    counters = simulator.counters()
    assert counters["server_errors"]["genapi"] > 0
    assert counters["submissions_total"] == 3


@pytest.mark.parametrize("field", ["result", "full_response"])
@pytest.mark.parametrize("encoding", ["url", "data_url", "base64"])
async def test_genapi_result_shapes_all_become_png_assets(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    field: str,
    encoding: str,
) -> None:
    simulator.update_config({"result_field": field, "encoding": encoding})
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock)
    (stored,) = (await run(adapter, files, {"prompt": "x"})).files
    assert stored.mime_type == "image/png"
    downloads = simulator.counters()["downloads"]
    assert bool(downloads) == (encoding == "url")


async def test_genapi_failed_and_error_statuses_carry_the_error(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    simulator.update_config({"failure_rate": 1, "failure_message": "NSFW content detected"})
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock)
    for _ in range(2):  # odd request ids say "error", even ones "failed"
        with pytest.raises(PermanentProviderError) as caught:
            await run(adapter, files, {"prompt": "x"})
        assert caught.value.message == "gen-api: genapi/z-image failed: NSFW content detected"


async def test_genapi_sends_the_seed_body(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock)
    await run(adapter, files, {"prompt": "портрет"})
    (task,) = simulator.state.tasks.values()
    assert task.inputs == {
        "translate_input": True,
        "prompt": "портрет",
        "width": 992,
        "height": 992,
        "num_images": 1,
        "model": "turbo",
        "output_format": "png",
        "num_inference_steps": 8,
        "enable_safety_checker": True,
        "acceleration": "high",
        "enable_prompt_expansion": False,
    }


async def test_a_resumed_step_polls_and_never_resubmits(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("genapi/z-image", {"prompt": "x"}),
        ("kie/seedream-4.5", {"prompt": "x"}),
        ("fal/birefnet", {"image": PHOTO}),
    ]
    for model_id, inputs in cases:
        adapter = adapter_for(shipped_specs, model_id, simulator, session, clock)
        crashed = Checkpoints(fail=True)
        with pytest.raises(ConnectionAbortedError):
            await adapter.run(call(files, model_id, inputs), resume=None, checkpoint=crashed)
        (state,) = crashed.states
        output = await adapter.run(
            call(files, model_id, inputs), resume=state, checkpoint=Checkpoints()
        )
        assert output.files
    assert simulator.counters()["submissions_total"] == 3


async def test_kie_seed_003_request_and_body_status_codes(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    adapter = adapter_for(shipped_specs, "kie/seedance-1.5-pro", simulator, session, clock)
    await run(adapter, files, {"prompt": "arm wrestling", "image": PHOTO})
    (task,) = simulator.state.tasks.values()
    assert task.model == "bytedance/seedance-1.5-pro"
    assert task.inputs == {
        "prompt": "arm wrestling",
        "input_urls": [PHOTO.url],
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": "8",
    }

    simulator.update_config({"kie_errors_as_http_200": True})
    broke = adapter_for(
        shipped_specs, "kie/seedream-4.5", simulator, session, clock, key="sim-no-balance"
    )
    with pytest.raises(PermanentProviderError) as caught:
        await run(broke, files, {"prompt": "x"})
    assert caught.value.http_status == 402
    assert "insufficient credits, top up your Kie.ai account" in caught.value.message


async def test_kie_failed_task_reports_fail_msg(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    simulator.update_config({"failure_rate": 1, "failure_message": "content policy"})
    adapter = adapter_for(shipped_specs, "kie/seedream-4.5", simulator, session, clock)
    with pytest.raises(PermanentProviderError, match="failed: content policy"):
        await run(adapter, files, {"prompt": "x"})


async def test_replicate_prefer_wait_answers_a_waiting_caller_without_polling(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    simulator.update_config({"replicate_output": "string"})
    adapter = adapter_for(shipped_specs, "replicate/flux-schnell", simulator, session, clock)
    output = await run(adapter, files, {"prompt": "x"}, urgent=True)
    assert output.files
    assert output.cost == pytest.approx(0.003)
    assert simulator.counters()["polls"] == {}

    simulator.update_config({"latency_min": 40, "latency_max": 50})  # longer than the wait
    assert (await run(adapter, files, {"prompt": "y"}, urgent=True)).files
    assert sum(simulator.counters()["polls"].values()) > 0


async def test_replicate_batch_submits_are_never_held_open(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    # A submit held open by "Prefer: wait" is one a worker can die in after paying.
    simulator.update_config({"replicate_output": "string"})
    adapter = adapter_for(shipped_specs, "replicate/flux-schnell", simulator, session, clock)
    assert "Prefer" not in adapter.prepare_submit({"prompt": "x"}, idempotency_key="k").headers
    assert (await run(adapter, files, {"prompt": "x"})).files
    assert sum(simulator.counters()["polls"].values()) > 0


async def test_replicate_and_fal_cancel_at_the_provider(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    simulator.update_config({"latency_min": 100, "latency_max": 120})
    cases: list[tuple[str, dict[str, Any]]] = [
        ("replicate/flux-schnell", {"prompt": "x"}),
        ("fal/birefnet", {"image": PHOTO}),
    ]
    for model_id, inputs in cases:
        adapter = adapter_for(shipped_specs, model_id, simulator, session, clock)
        polls_before = sum(simulator.counters()["polls"].values())

        def cancelled(before: int = polls_before) -> bool:
            polls: int = sum(simulator.counters()["polls"].values())
            return polls - before >= 2

        with pytest.raises(ProviderCancelled):
            await adapter.run(
                call(files, model_id, inputs, is_cancelled=cancelled),
                resume=None,
                checkpoint=Checkpoints(),
            )
    counters = simulator.counters()
    assert sum(counters["cancels"].values()) == 2
    statuses = {task["status"] for task in counters["tasks"].values()}
    assert statuses == {"canceled"}


async def test_fal_lora_settings_and_completed_with_error(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    v2 = adapter_for(shipped_specs, "fal/flux-kontext-lora-v2", simulator, session, clock)
    output = await run(v2, files, {"image": PHOTO, "prompt": "studio white"})
    assert output.cost == pytest.approx(0.035)
    (task,) = simulator.state.tasks.values()
    assert task.model == "fal-ai/flux-kontext-lora"
    assert (task.inputs["num_inference_steps"], task.inputs["guidance_scale"]) == (50, 3.5)
    assert task.inputs["image_url"] == PHOTO.url

    simulator.update_config({"failure_rate": 1, "failure_message": "runner crashed"})
    v1 = adapter_for(shipped_specs, "fal/flux-kontext-lora-v1", simulator, session, clock)
    with pytest.raises(PermanentProviderError, match="runner crashed"):
        await run(v1, files, {"image": PHOTO, "prompt": "x"})


async def test_openai_insufficient_quota_is_permanent_not_a_rate_limit(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    adapter = adapter_for(
        shipped_specs, "openai/translate", simulator, session, clock, key="sim-no-balance"
    )
    with pytest.raises(PermanentProviderError) as caught:
        await run(adapter, files, {"text": "hi", "target_language": "de"})
    assert caught.value.http_status == 429
    assert "exceeded your current quota" in caught.value.message
    assert simulator.counters()["requests"] == {"openai": 1}


async def test_a_hanging_provider_times_out_as_retryable(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    spec = shipped_specs["genapi"]
    quick = spec.model_copy(
        update={"limits": spec.limits.model_copy(update={"timeout": 0.3, "retries": 1})}
    )
    simulator.update_config({"timeout_rate": 1, "hang_seconds": 5})
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock, spec=quick)
    with pytest.raises(RetryableProviderError, match=r"no answer within 0\.3 s"):
        await run(adapter, files, {"prompt": "x"})
    assert simulator.counters()["timeouts"] == {"genapi": 2}


async def test_an_idempotency_key_reaches_the_provider_when_the_spec_sends_one(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    spec = shipped_specs["fal"]
    with_key = spec.model_copy(
        update={
            "models": [
                m.model_copy(update={"idempotency": IdempotencySpec(header="Idempotency-Key")})
                if m.id == "fal/birefnet"
                else m
                for m in spec.models
            ]
        }
    )
    adapter = adapter_for(shipped_specs, "fal/birefnet", simulator, session, clock, spec=with_key)
    await run(adapter, files, {"image": PHOTO})
    assert simulator.counters()["idempotency_keys"] == {"run-fal/birefnet": 1}


@pytest.mark.parametrize(
    ("announced_at", "refusal"),
    [
        # The simulator's own port, on another loopback address: not the simulator's host.
        ("http://127.0.0.1:{port}", "a loopback address 127.0.0.1"),
        # The simulator's host on another port (here PostgreSQL's): only its own port is open.
        (f"http://{SIM_HOST}:5432", f"a loopback address {SIM_HOST}"),
        ("http://169.254.169.254", "a link-local (cloud metadata) address 169.254.169.254"),
        ("http://10.0.0.5:{port}", "a private address 10.0.0.5"),
    ],
)
async def test_a_result_url_the_policy_refuses_is_never_fetched(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
    fetch_policy: UrlPolicy,
    tmp_path: Path,
    announced_at: str,
    refusal: str,
) -> None:
    # Results are stored as a running item stores them: through the SSRF-checked fetcher,
    # whose policy in simulate mode allows the simulator's host and nothing else private.
    assert not fetch_policy.allow_private
    port = simulator.base_url.rsplit(":", 1)[1]
    assert fetch_policy.allowed_endpoints == {(SIM_HOST, int(port))}
    assert fetch_policy.allowed_networks == ()
    simulator.update_config({"public_url": announced_at.format(port=port)})
    adapter = adapter_for(shipped_specs, "genapi/z-image", simulator, session, clock)
    with pytest.raises(UrlRefused) as caught:
        await run(adapter, files, {"prompt": "x"})
    assert refusal in caught.value.message
    assert caught.value.status_code == 400
    assert simulator.counters()["downloads"] == {}
    stored = [p for p in (tmp_path / "storage").rglob("*") if p.is_file()]
    assert stored == []


async def test_a_refused_key_names_the_variable_it_is_read_from(
    shipped_specs: dict[str, ProviderSpec],
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    files: ItemFiles,
) -> None:
    adapter = adapter_for(
        shipped_specs, "replicate/flux-schnell", simulator, session, clock, key="not-a-key"
    )
    with pytest.raises(PermanentProviderError) as caught:
        await run(adapter, files, {"prompt": "x"})
    assert caught.value.http_status == 401
    assert caught.value.message.endswith(
        "; check the API key in CONVEYOR_REPLICATE_API_TOKEN or REPLICATE_API_TOKEN"
    )
