"""Screenshots of every console page from one run, for the docs.

    .venv/bin/python -m tests.e2e.screenshots [FOLDER]   # default: docs/screenshots

Starts the console in open mode on a temporary SQLite database, runs a small batch through
``image-finish``, a job that fails, and one that waits, then photographs each page in
Debian's Chromium at 1280×800 (and Home at 375 px wide).
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import Page

from tests.e2e.harness import browser_missing_reason, chromium, console_server

PAGES = [
    ("home", "/"),
    ("jobs", "/console/jobs"),
    ("gallery", "/console/gallery"),
    ("models", "/console/models"),
    ("providers", "/console/providers"),
    ("workers", "/console/workers"),
    ("keys", "/console/keys"),
    ("sign-in", "/console/sign-in"),
]


def _product(color: tuple[int, int, int], folder: Path, name: str) -> str:
    picture = Image.new("RGB", (480, 360), (236, 232, 226))
    draw = ImageDraw.Draw(picture)
    draw.rounded_rectangle((150, 70, 330, 300), radius=40, fill=color)
    draw.ellipse((200, 40, 280, 100), fill=tuple(max(0, c - 60) for c in color))
    out = io.BytesIO()
    picture.save(out, "PNG")
    path = folder / name
    path.write_bytes(out.getvalue())
    return str(path)


def _run(page: Page, run: str, fill: dict[str, str], files: dict[str, list[str]]) -> str:
    page.goto(f"/?run={run}")
    for selector, value in fill.items():
        page.fill(selector, value)
    for selector, paths in files.items():
        page.set_input_files(selector, paths)
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url("**/console/jobs/*")
    return page.url


def main(folder: Path) -> None:
    reason = browser_missing_reason()
    if reason is not None:
        raise SystemExit(reason)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, chromium() as browser:
        work = Path(scratch)
        with console_server(work / "server") as console:
            context = browser.new_context(
                base_url=console.base_url, viewport={"width": 1280, "height": 800}
            )
            context.set_default_timeout(30_000)
            page = context.new_page()
            photos = [
                _product(color, work, f"{name}.png")
                for name, color in [
                    ("mug", (40, 110, 200)),
                    ("vase", (200, 80, 60)),
                    ("lamp", (60, 160, 90)),
                ]
            ]
            batch = _run(page, "recipe:image-finish", {}, {"#f-item-image": photos})
            page.wait_for_function("() => document.getElementById('job-progress').value === 100")
            console.echo.broken.add("refused")
            _run(page, "model:test/echo", {"#f-item-text": "refused"}, {})
            _run(page, "model:test/gated-image", {}, {"#f-item-image": photos[:1]})
            page.goto(batch)
            page.wait_for_function(
                "() => [...document.querySelectorAll('img[data-role=after]')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            page.screenshot(path=folder / "job.png", full_page=True)
            for name, path in PAGES:
                page.goto(path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=folder / f"{name}.png", full_page=name != "models")
            page.set_viewport_size({"width": 375, "height": 812})
            page.goto("/")
            page.screenshot(path=folder / "home-375.png")
            context.close()
    print(f"screenshots in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screenshots"))
