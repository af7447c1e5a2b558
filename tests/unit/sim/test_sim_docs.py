"""docs/simulator.md's control API examples, sent as written to a running simulator: each
patch is accepted (or, the bad one, refused), and the YAML example is a valid config."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import aiohttp
import yaml

from conveyor.sim import RunningSimulator, SimConfig

DOC = Path(__file__).resolve().parents[3] / "docs" / "simulator.md"


def curl_posts() -> list[tuple[str, dict[str, object]]]:
    """Every ``curl -X POST URL ... -d 'JSON'`` of the page: its path and body."""
    found = []
    for command in re.findall(r"^curl -X POST .*?(?=\n```|\n#)", DOC.read_text(), re.M | re.S):
        words = shlex.split(command)
        url = next(word for word in words if word.startswith("http://"))
        found.append((url.split("8100", 1)[1], json.loads(words[words.index("-d") + 1])))
    return found


async def test_every_documented_patch_does_what_the_page_says(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    posts = curl_posts()
    assert len(posts) == 4
    statuses = []
    for path, body in posts:
        async with http.post(f"{sim.base_url}{path}", json=body) as response:
            statuses.append(response.status)
            answer = await response.json()
    assert statuses == [200, 200, 200, 400]
    assert answer["error"] == "invalid_config"
    config = sim.config
    assert config.failure_rate == 0.0  # put back to its default by `null`
    assert config.latency_scale == 0
    assert config.behaviour_for("kie").http_500_rate == 0.05
    assert config.behaviour_for("genapi", "z-image").not_found_polls == 2
    assert (config.rate_limit_every, config.rate_limit_burst) == (10, 2)


def test_the_yaml_example_is_a_valid_config() -> None:
    example = DOC.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    config = SimConfig.model_validate(yaml.safe_load(example))
    assert config.behaviour_for("kie", "seedream-4.5").kie_moderation_rate == 0.2
    assert config.behaviour_for("replicate").replicate_output == "string"
