"""What every local engine function takes and gives back.

Engine functions run inside worker processes of a ``ProcessPoolExecutor``, so everything
here crosses a process boundary by pickling: plain dataclasses of bytes, strings and
numbers, and exceptions of the provider error tree (``conveyor.providers.errors``, pickled
back to the caller with their attributes) whose class says what the caller should do:

    EngineInputError     the input is bad (corrupt image, unknown language): permanent
    EngineFailure        the engine broke on this input (timeout, crash of a program): permanent
    EngineUnavailable    a package, program or model is missing: the model is unavailable
    EngineProcessDied    raised by the pool, not an engine: the process died; retryable

Engines never raise anything else on purpose; the adapter treats any other exception as a
permanent failure with the exception's text. Programs (espeak-ng, tesseract, apertium,
ffmpeg) are always run through ``run_program``, which enforces a timeout so a worker never
hangs on a wedged subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from conveyor.providers.errors import (
    ModelUnavailable,
    PermanentProviderError,
    RetryableProviderError,
)

# How to get what the engines need; quoted in every "unavailable" message.
SYSTEM_DEPS_HINT = (
    "run `make system-deps` (Debian packages: espeak-ng, tesseract-ocr, apertium, ffmpeg)"
)
PIPER_HINT = "pip install -e '.[piper]'"


class EngineInputError(PermanentProviderError):
    """The input cannot be processed; retrying the same input cannot help."""

    code = "INVALID_INPUT"


class EngineFailure(PermanentProviderError):
    """The engine failed on this input (a program crashed or timed out)."""

    code = "ENGINE_FAILED"


class EngineUnavailable(ModelUnavailable):
    """A package, program or model the engine needs is missing or broken."""

    def __init__(self, message: str, enable_with: str | None = None) -> None:
        super().__init__(message, provider="local")
        self.enable_with = enable_with


class EngineBroken(EngineUnavailable):
    """The engine itself cannot load here (as opposed to one input it has no support for):
    its model is unavailable for every call."""


class EngineProcessDied(RetryableProviderError):
    """A worker process of the pool died (out of memory, a crashing native library) while the
    call was queued or running; the same call may well succeed in a fresh process."""

    code = "ENGINE_PROCESS_DIED"


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Operator settings every engine call receives (not per-request inputs)."""

    # Pillow's decompression-bomb limit; larger images are refused before decoding.
    max_image_pixels: int = 64_000_000
    tts_max_chars: int = 5_000
    translate_max_chars: int = 20_000
    # onnxruntime intra-op threads per call. The pool already runs one process per core, so
    # more threads only fight each other: 1 gave 1.7× the throughput of the default on two
    # cores (bench/engines.py). 0 leaves onnxruntime's default, for single-user latency.
    onnx_threads: int = 1
    # Wall-clock limit for one external program run (espeak-ng, tesseract, apertium, ffmpeg).
    program_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class OutputFile:
    data: bytes
    mime_type: str
    filename: str


@dataclass(slots=True)
class EngineResult:
    """What an engine entry point returns; the adapter stores ``files`` as assets."""

    files: list[OutputFile] = field(default_factory=list)
    data: dict[str, Any] | None = None
    text: str | None = None


def find_program(name: str) -> str:
    """The absolute path of a program, or ``EngineUnavailable`` naming how to install it."""
    path = shutil.which(name)
    if path is None:
        raise EngineUnavailable(f"the program `{name}` is not installed", SYSTEM_DEPS_HINT)
    return path


def run_program(
    argv: list[str],
    *,
    stdin: bytes = b"",
    timeout: float,
    what: str,
    env: dict[str, str] | None = None,
) -> bytes:
    """Run a program to completion and return its stdout; never hangs past ``timeout``."""
    program = find_program(argv[0])
    full_env = dict(os.environ)
    # Programs built on OpenMP (tesseract) would otherwise start one thread per core in
    # every pool worker and fight each other for the same two cores.
    full_env.setdefault("OMP_THREAD_LIMIT", "1")
    if env:
        full_env.update(env)
    try:
        completed = subprocess.run(
            [program, *argv[1:]],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
            env=full_env,
        )
    except subprocess.TimeoutExpired as exc:
        raise EngineFailure(f"{what} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise EngineUnavailable(f"cannot start `{argv[0]}`: {exc}", SYSTEM_DEPS_HINT) from exc
    if completed.returncode != 0:
        detail = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        last = detail[-1] if detail else f"exit status {completed.returncode}"
        raise EngineFailure(f"{what} failed: {last[:300]}")
    return completed.stdout
