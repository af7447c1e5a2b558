"""The seed's JavaScript example, verbatim, in a real browser (Debian's Chromium, driven by
Playwright), against a live server with no provider key.

The page is any page of the server's own origin with the seed's two elements added (a file
input and ``<img id="result">``); the photo is chosen in the input as a person would; then
the seed's script runs unchanged: ``fetch('/process_single')`` with its ``FormData``,
``/single_progress`` polled every 2 s, and the final shown in the image. The test waits for
the image to load and checks it is the 1000×1000 final, and that the requests were the
seed's. Skipped where Playwright or Chromium is not installed, failed instead with
``CONVEYOR_TEST_BROWSER=required``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.app import create_app
from tests.integration.compat.photos_stack import mug_photo
from tests.integration.conftest import fast_settings
from tests.support import databases
from tests.support.server import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED_PAGE = '<input type="file" id="fileInput"><img id="result">'
# The seed's JavaScript example, as the document prints it.
SEED_SCRIPT = """
// Загрузка файла
const formData = new FormData();
formData.append('file', fileInput.files[0]);
formData.append('lora_version', 'v2');

fetch('/process_single', {
    method: 'POST',
    body: formData
})
.then(response => response.json())
.then(data => {
    const processingId = data.processing_id;

    // Отслеживание прогресса
    const checkProgress = setInterval(() => {
        fetch(`/single_progress/${processingId}`)
        .then(response => response.json())
        .then(status => {
            if (status.status === 'completed') {
                clearInterval(checkProgress);
                document.getElementById('result').src =
                    `/single_image/${processingId}/final`;
            } else if (status.status === 'error') {
                clearInterval(checkProgress);
                console.error(status.error);
            }
        });
    }, 2000);
});
"""


def _browser_missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (the console's test extra)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}"
    return None


async def test_the_seed_javascript_runs_in_a_browser(sqlite_template: Path, tmp_path: Path) -> None:
    reason = _browser_missing()
    if reason is not None:
        if os.environ.get("CONVEYOR_TEST_BROWSER") == "required":
            pytest.fail(f"a browser is required (CONVEYOR_TEST_BROWSER=required): {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    photo = tmp_path / "product.jpg"
    photo.write_bytes(mug_photo())
    database_url = databases.fresh_sqlite_url(sqlite_template, tmp_path)
    app = create_app(fast_settings(database_url, tmp_path / "data"))
    async with serving(app) as base_url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            page = await browser.new_page()
            sent: list[str] = []
            page.on("request", lambda request: sent.append(f"{request.method} {request.url}"))
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            refused: list[str] = []
            page.on("response", lambda r: refused.append(r.url) if r.status >= 400 else None)
            await page.goto(f"{base_url}/healthz")
            await page.evaluate("html => { document.body.innerHTML = html; }", SEED_PAGE)
            await page.set_input_files("#fileInput", str(photo))
            await page.evaluate(f"() => {{ {SEED_SCRIPT} }}")
            await page.wait_for_function(
                "() => { const img = document.getElementById('result');"
                " return img.complete && img.naturalWidth > 0; }",
                timeout=120_000,
            )
            size = await page.evaluate(
                "() => { const img = document.getElementById('result');"
                " return [img.naturalWidth, img.naturalHeight]; }"
            )
        finally:
            await browser.close()
    assert size == [1000, 1000]
    # The seed's script logs nothing; the browser's own favicon request is the only 404.
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []
    assert refused in ([], [f"{base_url}/favicon.ico"])
    paths = [entry.removeprefix(f"{entry.split(' ')[0]} {base_url}") for entry in sent]
    assert paths[1] == "/process_single"
    assert sent[1].startswith("POST ")
    assert paths[2].startswith("/single_progress/")
    assert paths[-1].startswith("/single_image/")
    assert paths[-1].endswith("/final")
