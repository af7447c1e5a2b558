"""What `submit` does with a finished job: each failed item's reason, and with ``--out`` the
output files unpacked under the inputs' names plus ``results.json`` mapping input to output.

An item is known by the input it came from: the file given with ``--file`` (``a.jpg``) or
its place in the ``--items`` file (``items.json[0]``). Its output files are written as
``<input stem>.<extension of the output's type>``, numbered (``a-1.png``, ``a-2.png``) when
an item made several, and never over an input file.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.client import Conveyor

RESULTS_FILE = "results.json"


@dataclass(frozen=True, slots=True)
class ItemInput:
    """Where one item of a job came from."""

    label: str  # how it is named in messages and in results.json
    stem: str  # the name its output files get
    path: Path | None = None  # the uploaded file, if it was one


def file_input(path: Path) -> ItemInput:
    return ItemInput(str(path), path.stem, path)


def listed_input(items_file: Path, index: int) -> ItemInput:
    source = "stdin" if str(items_file) == "-" else items_file.name
    return ItemInput(f"{source}[{index}]", f"item-{index + 1}")


def failure_lines(items: Sequence[dict[str, Any]], inputs: Sequence[ItemInput]) -> list[str]:
    """One line per item that did not complete: its input and the reason."""
    lines = []
    for item in items:
        if item["status"] in ("failed", "cancelled"):
            reason = item.get("error") or item["status"]
            code = f"{item['error_code']}: " if item.get("error_code") else ""
            lines.append(f"{_label(item, inputs)} {item['status']}: {code}{reason}")
    return lines


def unpack(
    api: Conveyor,
    job: dict[str, Any],
    items: Sequence[dict[str, Any]],
    inputs: Sequence[ItemInput],
    out: Path,
) -> Path:
    """Write every output file into ``out`` under its input's name, and ``results.json``
    mapping each input to its outputs (or its error); returns the ``results.json`` path."""
    out.mkdir(parents=True, exist_ok=True)
    taken = {i.path.resolve() for i in inputs if i.path is not None}
    mapping: dict[str, dict[str, Any]] = {}
    for item in items:
        seq = int(item["seq"])
        stem = inputs[seq].stem if seq < len(inputs) else f"item-{seq + 1}"
        files = list(_file_refs(item.get("output")))
        written = []
        for number, ref in enumerate(files, start=1):
            name = stem if len(files) == 1 else f"{stem}-{number}"
            target = _free_name(out, name, _extension(ref), taken)
            target.write_bytes(api.asset_content(str(ref["asset_id"])))
            taken.add(target.resolve())
            written.append(target.name)
        output = item.get("output") or {}
        mapping[_label(item, inputs)] = {
            "status": item["status"],
            "outputs": written,
            "text": output.get("text") if isinstance(output, dict) else None,
            "error": item.get("error"),
            "error_code": item.get("error_code"),
            "item_id": item["id"],
        }
    document = {"job": {"id": job["id"], "status": job["status"]}, "inputs": mapping}
    results = out / RESULTS_FILE
    results.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return results


def _label(item: dict[str, Any], inputs: Sequence[ItemInput]) -> str:
    seq = int(item["seq"])
    return inputs[seq].label if seq < len(inputs) else f"item {seq + 1}"


def _file_refs(output: Any) -> Iterator[dict[str, Any]]:
    """Every stored file an output names, in order, however a recipe nests them."""
    if isinstance(output, dict):
        if output.get("asset_id") and output.get("mime_type"):
            yield output
            return
        for value in output.values():
            yield from _file_refs(value)
    elif isinstance(output, list):
        for value in output:
            yield from _file_refs(value)


def _extension(ref: dict[str, Any]) -> str:
    mime = str(ref.get("mime_type") or "")
    # mimetypes answers ".jpe" for JPEG on some systems: say what people expect.
    special = {"image/jpeg": ".jpg", "audio/mpeg": ".mp3", "audio/ogg": ".ogg"}
    return special.get(mime) or mimetypes.guess_extension(mime) or ".bin"


def _free_name(folder: Path, stem: str, extension: str, taken: set[Path]) -> Path:
    """``stem + extension`` in ``folder``, unless that is an input or written already."""
    target = folder / f"{stem}{extension}"
    suffix = 1
    while target.resolve() in taken:
        target = folder / f"{stem}.out{'' if suffix == 1 else suffix}{extension}"
        suffix += 1
    return target
