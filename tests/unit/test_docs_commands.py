"""The commands the docs give work as written: ``python -m bench`` names real modules and,
in a venv without the bench extras, says what to install; installing an extra never turns
the editable install into a copy (``pip install -e``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench._results import MODULES

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BENCH_FLAGS = {"--quick", "--no-write"}


def bench_commands() -> list[tuple[str, str]]:
    """Each ``python -m bench ...`` the docs show (up to ``--`` or the end of the code)."""
    found = []
    for doc in DOCS:
        for command in re.findall(r"python -m bench([^`\n#]*)", doc.read_text()):
            found.append((doc.name, command.split(" -- ")[0].strip()))
    return found


def test_every_documented_bench_command_names_real_modules_and_flags() -> None:
    commands = bench_commands()
    assert len(commands) >= 4
    for doc, command in commands:
        for word in command.split():
            if word.startswith("--"):
                assert word in BENCH_FLAGS, (doc, command)
            elif re.fullmatch(r"[a-z]+", word):
                assert word in MODULES, (doc, command)


def test_bench_without_its_extras_says_what_to_install() -> None:
    # The venv `make serve` makes has no psutil: run the entry point as it would go there.
    script = (
        "import runpy, sys\n"
        "sys.modules['psutil'] = None\n"
        "sys.argv = ['bench', '--help']\n"
        "runpy.run_module('bench', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "needs the dev and bench extras (psutil is not installed)" in done.stderr
    assert ".venv/bin/pip install -e '.[dev,bench]'" in done.stderr


def test_bench_runs_in_the_venv_the_docs_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--no-write" in done.stdout


def test_extras_are_installed_editable_wherever_the_docs_say_how() -> None:
    places = [*DOCS, ROOT / "Makefile", *sorted((ROOT / "src").rglob("*.py"))]
    copies = [
        f"{place.relative_to(ROOT)}: {line.strip()}"
        for place in places
        for line in place.read_text().splitlines()
        if re.search(r"pip install [^`]*'\.\[", line)
        and " -e " not in line
        and "a plain " not in line  # the docs' own warning against it
    ]
    assert copies == []
