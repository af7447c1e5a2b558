from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from provider_fakes import (
    BASE_SPEC,
    deep_merge,
    make_spec,
)

from conveyor.providers.http import SHIPPED_SPECS, load_specs
from conveyor.providers.spec import ProviderSpecError, parse_spec, parse_spec_text


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ProviderSpecError) as caught:
        parse_spec(data, source="acme.yaml")
    assert caught.value.status_code == 422
    assert "acme.yaml" in caught.value.message
    return caught.value.errors


def with_model(**changes: Any) -> dict[str, Any]:
    data = deep_merge(BASE_SPEC, {})
    data["models"] = [deep_merge(data["models"][0], changes)]
    return data


async def test_every_shipped_spec_loads() -> None:
    specs = await load_specs(SHIPPED_SPECS)
    names = [spec.name for spec in specs]
    assert names == ["fal", "genapi", "kie", "openai", "replicate"]
    ids = {model.id for spec in specs for model in spec.models}
    assert {
        "genapi/z-image",
        "kie/seedance-1.5-pro",
        "fal/flux-kontext-lora-v1",
        "fal/flux-kontext-lora-v2",
        "fal/birefnet",
        "openai/vision",
        "openai/translate",
        "openai/image",
        "openai/speech",
    } <= ids
    for spec in specs:
        assert spec.docs.startswith("https://")


async def test_genapi_z_image_has_the_seed_defaults_and_protocol() -> None:
    genapi = next(s for s in await load_specs() if s.name == "genapi")
    model = genapi.model("genapi/z-image")
    assert model.defaults == {
        "translate_input": True,
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
    assert "callback_url" not in model.submit.body
    assert model.submit.path == "/networks/z-image"
    assert model.poll is not None
    assert model.poll.path == "/request/get/{{task_id}}"
    assert model.poll.interval == 3
    assert model.poll.max_wait >= 180
    assert model.poll.not_found_grace > 0
    assert model.status is not None
    assert model.status.running == ["starting", "pending", "processing"]
    assert model.status.failed == ["failed", "error"]
    assert model.result.paths == ["result[0]", "full_response[0].url"]
    assert genapi.errors.messages[402].startswith("insufficient balance")


async def test_fal_lora_versions_carry_seed_004_settings() -> None:
    fal = next(s for s in await load_specs() if s.name == "fal")
    v1 = fal.model("fal/flux-kontext-lora-v1").defaults
    v2 = fal.model("fal/flux-kontext-lora-v2").defaults
    assert (v1["num_inference_steps"], v1["guidance_scale"]) == (30, 2.5)
    assert (v2["num_inference_steps"], v2["guidance_scale"]) == (50, 3.5)
    # "common" was merged into each model, and the model's own value won.
    assert fal.model("fal/birefnet").poll.max_wait == 120  # type: ignore[union-attr]
    assert fal.model("fal/birefnet").poll.url == "{{state.status_url}}"  # type: ignore[union-attr]


def test_errors_are_all_listed_with_their_location() -> None:
    data = with_model(poll={"interval": -1}, result={"paths": ["a["]})
    data["auth"] = {"type": "query"}
    errors = errors_of(data)
    assert any(e.startswith("auth: auth.type 'query' needs auth.param") for e in errors)
    assert any(
        e.startswith("models[0] acme/paint: poll.interval: Input should be greater than 0")
        for e in errors
    )
    assert any("result.paths[0]: bad path 'a[' at position 1" in e for e in errors)


def test_unknown_keys_are_refused_by_name() -> None:
    errors = errors_of(with_model(submit={"bodyy": {}}))
    assert errors == ["models[0] acme/paint: submit.bodyy: Extra inputs are not permitted"]


def test_async_models_need_poll_status_and_task_id() -> None:
    data = with_model()
    for key in ("poll", "status"):
        del data["models"][0][key]
    del data["models"][0]["submit"]["task_id"]
    del data["models"][0]["cancel"]
    poll, status, task_id = errors_of(data)
    # One located line per fault.
    assert poll.startswith("models[0] acme/paint: ")
    assert "async models need 'poll'" in poll
    assert "async models need 'status'" in status
    assert "submit.task_id" in task_id


def test_poll_cannot_use_state_the_submit_step_never_saves() -> None:
    (error,) = errors_of(with_model(poll={"path": None, "url": "{{state.status_url}}"}))
    assert "poll uses {{state.status_url}} but submit.save has no 'status_url'" in error


def test_submit_cannot_use_the_task_id() -> None:
    (error,) = errors_of(with_model(submit={"path": "/tasks/{{task_id}}"}))
    assert "submit cannot use {{task_id}}" in error


def test_a_status_value_in_two_groups_is_refused() -> None:
    (error,) = errors_of(with_model(status={"failed": ["failed", "done"]}))
    assert "status 'done' is both success and failed" in error


def test_model_ids_are_prefixed_by_the_provider_and_unique() -> None:
    data = with_model(id="other/paint")
    assert any("must start with 'acme/'" in e for e in errors_of(data))
    data = with_model()
    data["models"] = [data["models"][0], data["models"][0]]
    assert any("appears twice" in e for e in errors_of(data))


def test_price_needs_exactly_one_rule() -> None:
    (error,) = errors_of(with_model(price={"per_call": 1, "per_unit": 2, "unit": "n"}))
    assert "exactly one of per_call, per_unit or per_file" in error
    (error,) = errors_of(with_model(price={"per_call": 1, "per_file": 2}))
    assert "exactly one of per_call, per_unit or per_file" in error
    (error,) = errors_of(with_model(price={"per_unit": 2}))
    assert "needs exactly one of unit or unit_path" in error


def test_request_targets_and_poll_intervals_are_checked() -> None:
    (error,) = errors_of(with_model(submit={"url": "https://x/{{a}}"}))
    assert "exactly one of 'path'" in error
    (error,) = errors_of(with_model(poll={"initial_interval": 5, "interval": 2}))
    assert "initial_interval <= interval <= max_interval" in error


def test_sync_models_cannot_poll_and_binary_answers_are_files() -> None:
    (error,) = errors_of(with_model(mode="sync"))
    assert "sync models take their result from the submit answer" in error
    data = with_model(result={"kind": "text"})
    data["models"][0]["submit"]["response"] = "binary"
    assert any("a binary answer can only be a 'file' result" in e for e in errors_of(data))


def test_yaml_errors_and_non_mappings_are_reported() -> None:
    with pytest.raises(ProviderSpecError, match="not valid YAML"):
        parse_spec_text("name: [unclosed", source="bad.yaml")
    with pytest.raises(ProviderSpecError, match="expected a mapping"):
        parse_spec_text("- a\n- b\n", source="list.yaml")


async def test_load_specs_refuses_duplicate_providers(tmp_path: Path) -> None:
    text = (SHIPPED_SPECS / "kie.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yml").write_text(text)
    with pytest.raises(ProviderSpecError, match=r"also defined in a\.yaml"):
        await load_specs(tmp_path)


def test_make_spec_helper_builds_a_valid_spec() -> None:
    spec = make_spec()
    assert spec.model("acme/paint").poll is not None


def test_a_placeholder_the_model_never_gets_is_named() -> None:
    lines = errors_of(
        with_model(
            submit={"body": {"prompt": "{{prompt}}", "size": "{{size?}}", "w": "{{width}}"}},
            poll={"query": {"region": "{{region}}"}},
        )
    )
    assert lines == [
        "models[0] acme/paint: submit uses {{size?}} but the model never gets 'size': declare "
        "it under inputs or give it a default (the model has: prompt, width)",
        "models[0] acme/paint: poll uses {{region}} but the model never gets 'region': declare "
        "it under inputs or give it a default (the model has: prompt, width)",
    ]
    # Declared inputs, defaults, built-ins and $each aliases are all given.
    make_spec(
        model={
            "inputs": {"size": {"type": "any"}, "images": {"type": "files"}},
            "submit": {
                "headers": {"X-Request": "{{idempotency_key}}", "X-Model": "{{model_id}}"},
                "body": {
                    "prompt": "{{prompt}}",
                    "size": "{{size?}}",
                    "parts": [{"$each": "images?", "as": "image", "template": "{{image}}"}],
                },
            },
        }
    )


def test_a_callback_section_is_validated() -> None:
    spec = make_spec(
        model={
            "callback": {
                "url_field": "hooks.done",
                "also_send": {"events": ["completed"]},
                "verify": "standard-webhooks",
                "secret_env": "ACME_WEBHOOK_SECRET",
                "task_id": ["id", "data.id"],
            }
        }
    )
    callback = spec.models[0].callback
    assert callback is not None
    assert callback.secret_env == ["ACME_WEBHOOK_SECRET"]
    assert callback.task_id == ["id", "data.id"]
    lines = errors_of(
        with_model(callback={"url_field": "hook url", "verify": "kie-hmac", "task_id": "data["})
    )
    assert any(line.startswith("models[0] acme/paint: callback.url_field: ") for line in lines)
    assert any("callback.task_id[0]: bad path 'data['" in line for line in lines)
    (line,) = errors_of(
        with_model(callback={"url_field": "hook", "verify": "kie-hmac", "task_id": "id"})
    )
    assert "callback.verify 'kie-hmac' needs secret_env" in line
