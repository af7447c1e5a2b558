"""``python -m bench [names...] [--quick]``: run benchmark modules, print, record.

Each module ``bench/<name>.py`` exposes ``main(argv: list[str] | None = None) -> str``
returning a markdown section. With no names every known module runs (``engine``,
``engines``, ``descriptions``, ``peer``, ``media``, ``photos``, ``fairness``); a module that
is not there is skipped with a note. Modules are imported only when they run, so one module's heavy
dependencies never stop another.
``--quick`` is passed on to each module (a module without a quick mode runs in full). Extra
arguments after ``--`` go to every module run (meant for one module at a time). The
sections of the modules that ran replace theirs in ``bench/RESULTS.md``; the others stay.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable

EXTRAS_HINT = (
    "python -m bench needs the dev and bench extras ({missing} is not installed): run "
    "`make bench`, or once `.venv/bin/pip install -e '.[dev,bench]'` in the venv `make serve` "
    "made, then `.venv/bin/python -m bench ...` from the repository's root"
)

try:
    from bench._results import (
        MODULES,
        RESULTS_PATH,
        database_versions,
        section,
        shell_command,
        write_sections,
    )
except ModuleNotFoundError as missing_extra:  # the runtime venv has no psutil
    sys.exit(EXTRAS_HINT.format(missing=missing_extra.name))

Main = Callable[[list[str] | None], str]


def load(name: str) -> Main | str:
    """The module's ``main``, or why it cannot run."""
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"bench.{name}", "bench"):
            return "no such module (not written yet?)"
        return f"cannot import: {exc}"
    except Exception as exc:
        return f"cannot import: {type(exc).__name__}: {exc}"
    main = getattr(module, "main", None)
    if not callable(main):
        return "has no main(argv) -> str"
    return main  # type: ignore[no-any-return]


def run_one(main: Main, args: list[str], quick: bool) -> str:
    if not quick:
        return main(args)
    try:
        return main(["--quick", *args])
    except SystemExit as exc:
        if exc.code != 2:  # 2: argparse refused an argument, i.e. no --quick here
            raise
    print("  (this module has no --quick; running it in full)", flush=True)
    return main(args)


def cli(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = shell_command(argv)
    passthrough: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, passthrough = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"modules to run (default: {' '.join(MODULES)})")
    parser.add_argument("--quick", action="store_true", help="small runs, about 1–2 minutes each")
    parser.add_argument(
        "--no-write", action="store_true", help=f"print only; leave {RESULTS_PATH.name} alone"
    )
    args = parser.parse_args(argv)
    names = args.names or list(MODULES)
    versions = database_versions()
    sections: dict[str, str] = {}
    failed = False
    for name in names:
        main = load(name)
        if isinstance(main, str):
            print(f"== {name}: skipped, {main}", flush=True)
            continue
        print(f"== {name}: running{' (quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        try:
            body = run_one(main, passthrough, args.quick)
        except Exception:
            failed = True
            print(f"== {name}: FAILED, its section is left as it was", flush=True)
            traceback.print_exc()
            continue
        sections[name] = section(name, body, command, versions)
        print(f"\n{sections[name]}\n== {name}: {time.monotonic() - started:.0f} s", flush=True)
    if sections and not args.no_write:
        write_sections(sections)
        print(f"wrote {', '.join(sections)} to {RESULTS_PATH}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(cli())
