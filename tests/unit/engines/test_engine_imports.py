"""Local engines load in the pool's processes, never in the API's or the worker's main one.

numpy, OpenCV and onnxruntime together cost a process about 45 MiB before anything runs;
the catalogue and the availability probes need none of them (``catalogue_facts``).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from conveyor.providers.local.catalogue import local_models
from conveyor.providers.local.engine import EngineOptions
from conveyor.providers.local.model_spec import EngineEntry

HEAVY = ("numpy", "cv2", "onnxruntime", "rapidocr_onnxruntime", "pymatting")

_OPEN_RUNTIME = """
import asyncio, json, sys
from conveyor.config import Settings
from conveyor.runtime import open_runtime

async def main() -> None:
    runtime = await open_runtime(Settings())
    await runtime.close()
    print(json.dumps({"loaded": sorted(m for m in HEAVY if m in sys.modules)}))

HEAVY = %r
asyncio.run(main())
"""


def test_opening_the_runtime_loads_no_engine_library(tmp_path: Path) -> None:
    database = tmp_path / "conveyor.db"
    env = {
        "CONVEYOR_DATA_DIR": str(tmp_path),
        "CONVEYOR_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "PATH": "/usr/bin:/bin",
    }
    migrate = subprocess.run(
        [sys.executable, "-c", "from conveyor.cli import main; main()", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    run = subprocess.run(
        [sys.executable, "-c", _OPEN_RUNTIME % (HEAVY,)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert '"loaded": []' in run.stdout, run.stdout


def test_every_local_engine_is_named_by_module_and_survives_pickling() -> None:
    entries = {
        spec.id: spec.engine
        for spec in local_models(EngineOptions())
        if isinstance(spec.engine, EngineEntry)
    }
    # Every engine that needs numpy, Pillow's pixel work, OpenCV or onnxruntime.
    assert sorted(entries) == [
        "local/analyze",
        "local/enhance",
        "local/finish",
        "local/grabcut",
        "local/ocr",
        "local/u2netp",
    ]
    for model_id, entry in entries.items():
        assert pickle.loads(pickle.dumps(entry)) == entry  # noqa: S301 (our own bytes)
        module = __import__(entry.module, fromlist=[entry.function])
        assert callable(getattr(module, entry.function)), model_id
