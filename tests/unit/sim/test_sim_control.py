"""Run-wide behaviour: the control API, injected faults, overrides, determinism, runners."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import aiohttp
import pytest

import conveyor.sim
from conveyor.core.clock import ManualClock
from conveyor.sim import RunningSimulator, SimConfig, SimulatorThread, start_simulator

AUTH = {"Authorization": "Bearer sim-key"}


def genapi(sim: RunningSimulator) -> str:
    return f"{sim.base_urls['genapi']}/api/v1"


async def submit_genapi(
    http: aiohttp.ClientSession, sim: RunningSimulator, model: str = "z-image"
) -> aiohttp.ClientResponse:
    async with http.post(
        f"{genapi(sim)}/networks/{model}", json={"prompt": "p"}, headers=AUTH
    ) as response:
        await response.read()
        return response


async def test_config_is_read_and_merge_patched_over_http(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{sim.base_url}/_sim/config",
        json={"failure_rate": 0.5, "models": {"genapi/z-image": {"not_found_polls": 3}}},
    ) as response:
        assert response.status == 200
    async with http.post(
        f"{sim.base_url}/_sim/config",
        json={"models": {"genapi/flux": {"encoding": "base64"}}, "failure_rate": None},
    ) as response:
        config = await response.json()
    assert config["failure_rate"] == 0.0  # null removed it: back to the default
    assert config["latency_min"] == 10  # untouched settings stay
    assert config["models"] == {
        "genapi/z-image": {"not_found_polls": 3},
        "genapi/flux": {"encoding": "base64"},
    }
    assert sim.config.behaviour_for("genapi", "z-image").not_found_polls == 3
    assert sim.config.behaviour_for("genapi", "other").not_found_polls == 0
    async with http.get(f"{sim.base_url}/_sim/config") as response:
        assert (await response.json())["models"] == config["models"]


@pytest.mark.parametrize(
    "patch",
    [
        {"failure_rate": 2},
        {"latency_min": 5, "latency_max": 1},
        {"models": {"genapi/z-image": {"no_such_knob": 1}}},
        {"protocols": {"nope": {}}},
        {"encoding": "hex"},
    ],
)
async def test_invalid_config_is_refused_and_nothing_changes(
    sim: RunningSimulator, http: aiohttp.ClientSession, patch: dict[str, Any]
) -> None:
    before = sim.config
    async with http.post(f"{sim.base_url}/_sim/config", json=patch) as response:
        assert response.status == 400
        assert (await response.json())["details"]
    assert sim.config is before


async def test_reset_forgets_tasks_and_counters_and_restores_the_config(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    await submit_genapi(http, sim)
    sim.update_config({"failure_rate": 1.0})
    async with http.post(f"{sim.base_url}/_sim/reset") as response:
        assert response.status == 200
    async with http.get(f"{sim.base_url}/_sim/counters") as response:
        counters = await response.json()
    assert counters["submissions_total"] == 0
    assert counters["tasks"] == {}
    assert sim.config.failure_rate == 0.0


async def test_counters_can_leave_out_per_task_timings(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    await submit_genapi(http, sim)
    async with http.get(f"{sim.base_url}/_sim/counters", params={"tasks": "0"}) as response:
        counters = await response.json()
    assert counters["tasks"] == {}
    assert counters["submissions_total"] == 1


async def test_index_lists_base_urls(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sim.base_url}/_sim") as response:
        index = await response.json()
    assert index["base_urls"] == sim.base_urls
    assert index["base_urls"]["fal"] == f"{sim.base_url}/fal"
    assert index["stands_for"]["openai"] == "https://api.openai.com"
    assert index["control"] == {
        "index": f"{sim.base_url}/_sim",
        "config": f"{sim.base_url}/_sim/config",
        "reset": f"{sim.base_url}/_sim/reset",
        "counters": f"{sim.base_url}/_sim/counters",
        "callbacks": f"{sim.base_url}/_sim/callbacks",
    }
    async with http.get(f"{sim.base_url}/") as response:
        assert response.status == 200
        assert await response.json() == index  # the first URL a person opens


def test_startup_lines_name_urls_that_open() -> None:
    from conveyor.sim.server import startup_lines

    lines = startup_lines("0.0.0.0", 8123)  # noqa: S104
    assert lines[0].startswith("Conveyor provider simulator on http://127.0.0.1:8123/ ")
    assert "http://127.0.0.1:8123/_sim/config" in lines[0]
    assert any("http://127.0.0.1:8123/genapi" in line for line in lines[1:])
    assert "0.0.0.0" not in "\n".join(lines)  # noqa: S104


async def test_429_bursts_follow_the_every_burst_pattern_with_retry_after(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config({"rate_limit_every": 2, "rate_limit_burst": 2, "retry_after_seconds": 7})
    responses = [await submit_genapi(http, sim) for _ in range(6)]
    assert [response.status for response in responses] == [200, 200, 429, 429, 200, 200]
    assert responses[2].headers["Retry-After"] == "7"
    counters = sim.counters()
    assert counters["rate_limited"] == {"genapi": 2}
    assert counters["submissions_total"] == 4


async def test_rate_limit_bursts_are_per_protocol(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config({"protocols": {"kie": {"rate_limit_every": 1}}})
    statuses = [(await submit_genapi(http, sim)).status for _ in range(3)]
    assert statuses == [200, 200, 200]


async def test_http_500_rate(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.update_config({"http_500_rate": 1.0})
    response = await submit_genapi(http, sim)
    assert response.status == 500
    assert sim.counters()["server_errors"] == {"genapi": 1}
    assert sim.counters()["submissions_total"] == 0


async def test_per_model_override_touches_only_that_model(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config({"models": {"genapi/flaky": {"http_500_rate": 1.0}}})
    assert (await submit_genapi(http, sim, "flaky")).status == 500
    assert (await submit_genapi(http, sim, "z-image")).status == 200


async def test_a_hang_of_zero_seconds_ends_in_504(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config({"timeout_rate": 1.0, "hang_seconds": 0})
    response = await submit_genapi(http, sim)
    assert response.status == 504
    assert sim.counters()["timeouts"] == {"genapi": 1}


async def test_a_hang_outlasts_the_client_timeout(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config({"timeout_rate": 1.0, "hang_seconds": 60})
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            f"{genapi(sim)}/networks/z-image",
            json={"prompt": "p"},
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass
    assert sim.counters()["timeouts"] == {"genapi": 1}
    sim.reset()  # releases the hung handler so the fixture closes at once


async def test_zero_latency_scale_finishes_at_once(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.update_config({"latency_scale": 0})
    async with http.post(
        f"{genapi(sim)}/networks/z-image", json={"prompt": "p"}, headers=AUTH
    ) as response:
        request_id = (await response.json())["request_id"]
    async with http.get(f"{genapi(sim)}/request/get/{request_id}", headers=AUTH) as response:
        assert (await response.json())["status"] == "success"


async def _request_ids(seed: int) -> list[int]:
    clock = ManualClock(sleep_advances=True)
    config = SimConfig(seed=seed, latency_min=1, latency_max=9)
    async with (
        await start_simulator(config, clock=clock) as sim,
        aiohttp.ClientSession() as http,
    ):
        ids = []
        for _ in range(3):
            async with http.post(
                f"{genapi(sim)}/networks/z-image", json={"prompt": "p"}, headers=AUTH
            ) as response:
                ids.append((await response.json())["request_id"])
        latencies = [task.latency for task in sim.state.tasks.values()]
    return ids + [round(latency * 1000) for latency in latencies]


async def test_the_seed_makes_a_run_reproducible() -> None:
    assert await _request_ids(1) == await _request_ids(1)
    assert await _request_ids(1) != await _request_ids(2)


def test_simulator_thread_serves_synchronous_callers() -> None:
    with SimulatorThread(SimConfig(latency_scale=0)) as sim:
        request = urllib.request.Request(  # noqa: S310 (http to the local simulator)
            f"{sim.base_urls['genapi']}/api/v1/networks/z-image",
            data=json.dumps({"prompt": "p"}).encode(),
            headers={**AUTH, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert json.loads(response.read())["status"] == "starting"
        assert sim.counters()["submissions_total"] == 1
        assert sim.update_config({"failure_rate": 1.0}).failure_rate == 1.0
        sim.reset()
        assert sim.counters()["submissions_total"] == 0
        assert sim.config.failure_rate == 0.0


def test_public_surface_is_listed() -> None:
    exported = {name for name in dir(conveyor.sim) if not name.startswith("_")}
    modules = {
        "app", "audio", "callbacks", "chat_answers", "clock", "config", "fal", "files", "gate",
        "genapi", "images", "kie", "media", "openai_compat", "replicate", "server", "state",
    }  # fmt: skip
    assert exported - modules - {"annotations"} == set(conveyor.sim.__all__)
