"""``bench/RESULTS.md``: one section per benchmark module, each stamped with where and when.

A section sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``. Running some
modules replaces their sections and keeps everyone else's, so the file always holds the
latest run of every module; each section carries its own date, machine and command because
the sections of one file may come from different runs.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
MODULES = ("engine", "engines", "descriptions", "peer", "media", "photos", "fairness")
# A section named "<module>-notes" is written by hand; it is kept and shown after its module.
NOTES_SUFFIX = "-notes"
HEADER = """# Benchmark results

Written by `python -m bench` (`make bench`). Each module's section is replaced when that
module runs and kept otherwise, so sections may come from different runs: each says when,
where and how it was measured. A `<module>-notes` section is written by hand (what the
numbers mean, where they fall short and why) and is kept until someone edits it. The reference
machine is a shared 2-vCPU VM; treat the numbers as relative and re-measure before relying
on one.
"""
_SECTION = re.compile(
    r"<!-- bench:(?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->", re.S
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(versions: Mapping[str, str]) -> str:
    """CPU, cores, RAM, OS, Python and database versions in one line."""
    logical = os.cpu_count() or 0
    physical = psutil.cpu_count(logical=False) or logical
    ram = psutil.virtual_memory().total / 2**30
    parts = [
        f"{cpu_model()}, {logical} logical / {physical} physical cores",
        f"{ram:.1f} GiB RAM",
        platform.platform(terse=True),
        f"Python {platform.python_version()}",
        *(f"{name} {version}" for name, version in versions.items()),
    ]
    return " · ".join(parts)


def database_versions() -> dict[str, str]:
    from bench._stack import server_versions

    return asyncio.run(server_versions())


def stamp(command: str, versions: Mapping[str, str]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"_Measured {now} with `{command}` on {machine_line(versions)}._"


def read_sections(path: Path = RESULTS_PATH) -> dict[str, str]:
    if not path.exists():
        return {}
    return {m["name"]: m["body"].strip("\n") for m in _SECTION.finditer(path.read_text())}


def write_sections(new: Mapping[str, str], path: Path = RESULTS_PATH) -> None:
    """Replace the sections in ``new`` (name → body), keep the others."""
    sections = read_sections(path)
    sections.update(new)
    blocks = [HEADER]
    for name in _layout(sections):
        blocks.append(f"<!-- bench:{name} -->\n{sections[name].strip()}\n<!-- /bench:{name} -->\n")
    path.write_text("\n".join(blocks))


def _layout(sections: Mapping[str, str]) -> list[str]:
    """Known modules first, then others by name; each followed by its notes, if any."""
    bases = [n for n in sections if not n.endswith(NOTES_SUFFIX)]
    ordered = [n for n in MODULES if n in bases] + sorted(n for n in bases if n not in MODULES)
    names: list[str] = []
    for name in ordered:
        names.append(name)
        if name + NOTES_SUFFIX in sections:
            names.append(name + NOTES_SUFFIX)
    return names + sorted(n for n in sections if n not in names)


def section(name: str, body: str, command: str, versions: Mapping[str, str]) -> str:
    return f"## {name}\n\n{stamp(command, versions)}\n\n{body.strip()}\n"


def shell_command(argv: Sequence[str]) -> str:
    return " ".join(["python -m bench", *argv])
