from __future__ import annotations

import aiohttp

from conveyor.providers.http import (
    HttpModelAdapter,
    HttpOverrides,
    build_http_adapters,
    load_specs,
)
from conveyor.providers.limits import ProviderLimits


def by_id(adapters: list[HttpModelAdapter]) -> dict[str, HttpModelAdapter]:
    return {adapter.model_id: adapter for adapter in adapters}


async def test_without_keys_every_remote_model_is_listed_as_unavailable(
    session: aiohttp.ClientSession,
) -> None:
    adapters = by_id(build_http_adapters(await load_specs(), session, HttpOverrides(env={})))
    z_image = adapters["genapi/z-image"].availability()
    assert not z_image.available
    assert z_image.reason == "no API key for gen-api: set CONVEYOR_GENAPI_API_KEY"
    assert z_image.enable_with == "CONVEYOR_GENAPI_API_KEY"
    assert adapters["fal/birefnet"].availability().enable_with == "CONVEYOR_FAL_KEY"
    assert adapters["genapi/z-image"].base_url == "https://api.gen-api.ru/api/v1"
    assert adapters["openai/vision"].base_url == "https://api.openai.com/v1"


async def test_keys_and_base_urls_come_from_env_and_the_database(
    session: aiohttp.ClientSession,
) -> None:
    env = {
        "GEN_API_KEY": "from-vendor-variable",
        "CONVEYOR_KIE_API_KEY": "kie-env",
        "CONVEYOR_OPENAI_BASE_URL": "http://127.0.0.1:11434/v1/",
        "CONVEYOR_OPENAI_VISION_MODEL": "llava:13b",
    }
    overrides = HttpOverrides(env=env, keys={"kie": "kie-db"})
    adapters = by_id(build_http_adapters(await load_specs(), session, overrides))
    assert adapters["genapi/z-image"].api_key == "from-vendor-variable"
    assert adapters["kie/seedance-1.5-pro"].api_key == "kie-db"  # the database wins
    vision = adapters["openai/vision"]
    assert vision.base_url == "http://127.0.0.1:11434/v1"
    assert vision.defaults["model"] == "llava:13b"
    # A local OpenAI-compatible server needs no key.
    assert vision.availability().available
    assert not adapters["replicate/flux-schnell"].availability().available


async def test_simulate_mode_points_everything_at_the_simulator(
    session: aiohttp.ClientSession,
) -> None:
    overrides = HttpOverrides(
        simulate=True,
        simulator_url="http://127.0.0.1:8100/",
        env={"CONVEYOR_GENAPI_API_KEY": "real-key"},
    )
    adapters = by_id(build_http_adapters(await load_specs(), session, overrides))
    assert adapters["genapi/z-image"].base_url == "http://127.0.0.1:8100/genapi/api/v1"
    assert adapters["kie/seedream-4.5"].base_url == "http://127.0.0.1:8100/kie"
    assert adapters["fal/birefnet"].base_url == "http://127.0.0.1:8100/fal"
    assert adapters["replicate/flux-schnell"].base_url == "http://127.0.0.1:8100/replicate"
    assert adapters["openai/speech"].base_url == "http://127.0.0.1:8100/openai/v1"
    for adapter in adapters.values():
        assert adapter.simulated
        assert adapter.api_key == "sim-key"  # real keys never go to the simulator
        assert adapter.availability().available


async def test_models_of_a_provider_share_one_limits_object(
    session: aiohttp.ClientSession,
) -> None:
    given = {"fal": ProviderLimits("fal", max_in_flight=3)}
    adapters = build_http_adapters(await load_specs(), session, HttpOverrides(env={}), limits=given)
    fal = [a for a in adapters if a.provider == "fal"]
    assert {id(a.limits) for a in fal} == {id(given["fal"])}
    openai = [a for a in adapters if a.provider == "openai"]
    assert len({id(a.limits) for a in openai}) == 1
    assert openai[0].limits.max_in_flight == 64
