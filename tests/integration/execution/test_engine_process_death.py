"""A local engine's pool process killed in the middle of a call: the call is retried in a
fresh process and the item succeeds (it used to fail for good as ``ENGINE_FAILED``)."""

from __future__ import annotations

import os
from pathlib import Path

from conveyor.providers.base import Availability
from conveyor.providers.local.adapter import LocalModelAdapter
from conveyor.providers.local.model_spec import InputField, LocalModelSpec
from conveyor.providers.local.pool import EnginePool
from tests.integration.conftest import Serve
from tests.support.engines import die_once

CRASHY = LocalModelSpec(
    id="test/crashy",
    kind="text",
    title="Dies the first time",
    description="kills its own pool process on the first call",
    pros=(),
    cons=(),
    tags=("test",),
    inputs=(InputField("marker", "string", "a file path", required=True),),
    limiter="test.crashy",
    concurrency=1,
    engine=die_once,
    probe=lambda: Availability(True),
    license="test",
)


async def test_an_item_whose_engine_process_dies_succeeds_on_retry(
    serve: Serve, tmp_path: Path
) -> None:
    marker = tmp_path / "died-once"
    pool = EnginePool(1)
    try:
        adapter = LocalModelAdapter(CRASHY, pool)
        async with serve(adapter) as client:
            job = (
                await client.post(
                    "/v1/jobs",
                    json={"model": "test/crashy", "items": [{"marker": str(marker)}], "wait": 60},
                )
            ).json()
            assert job["status"] == "completed", job
            [item] = (await client.get(f"/v1/jobs/{job['id']}/items")).json()["data"]
    finally:
        pool.shutdown()
    killed = int(marker.read_text())
    assert killed != os.getpid()
    assert item["status"] == "completed"
    assert item["output"]["text"] == f"survived; the first process was {killed}"
