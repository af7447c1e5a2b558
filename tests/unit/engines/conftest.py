from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
from engine_samples import InlineCpuRunner, MemoryAssetIO


@pytest.fixture
def assets() -> MemoryAssetIO:
    return MemoryAssetIO()


@pytest.fixture
def inline_cpu() -> InlineCpuRunner:
    return InlineCpuRunner()


@pytest.fixture(scope="module")
def process_pool() -> Iterator[ProcessPoolExecutor]:
    # spawn, as a worker would: no onnxruntime threads inherited half-initialised by fork.
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)
