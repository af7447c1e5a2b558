"""The console in a real browser, in open mode: run, watch, download, cancel, retry."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.harness import Console, png

JOB_URL = re.compile(r".*/console/jobs/[0-9a-f-]{36}$")


def _start(page: Page, run: str) -> None:
    page.goto(f"/?run={run}")
    expect(page.locator("#run-form input[name=run]")).to_have_value(run)


def _images_loaded(page: Page, role: str, count: int) -> None:
    page.wait_for_function(
        """([role, count]) => {
            const shown = [...document.querySelectorAll(`img[data-role=${role}]`)];
            return shown.length >= count && shown.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=[role, count],
    )


def test_upload_runs_live_to_100_percent_shows_before_after_and_downloads_zip(
    page: Page, open_console: Console, files: Path
) -> None:
    open_console.gated.gate.clear()
    picture = files / "red.png"
    picture.write_bytes(png((200, 30, 30)))
    _start(page, "model:test/gated-image")
    page.set_input_files("#f-item-image", str(picture))
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url(JOB_URL)
    bar = page.locator("#job-progress")
    expect(bar).to_have_js_property("value", 0)
    expect(page.locator("[data-field=live]")).to_have_text("Live.")
    # A mark on this document: it survives only if the page is never reloaded.
    page.evaluate("window.__sameDocument = true")

    open_console.gated.gate.set()

    expect(bar).to_have_js_property("value", 100)
    expect(page.locator("[data-field=status]")).to_have_text("completed")
    assert page.evaluate("window.__sameDocument === true")
    _images_loaded(page, "before", 1)
    _images_loaded(page, "after", 1)
    expect(page.locator(".item")).to_contain_text("test/gated-image")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download ZIP").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    names = archive.namelist()
    assert "results.json" in names
    result = next(n for n in names if n.endswith(".png"))
    assert archive.read(result).startswith(b"\x89PNG")


def test_a_batch_of_photos_through_image_finish(
    page: Page, open_console: Console, files: Path
) -> None:
    paths = []
    for index, color in enumerate([(10, 120, 200), (30, 180, 60), (220, 200, 40)]):
        path = files / f"photo-{index}.png"
        path.write_bytes(png(color, (80 + index * 10, 60)))
        paths.append(str(path))
    _start(page, "recipe:image-finish")
    page.set_input_files("#f-item-image", paths)
    page.select_option("#f-option-preset", "square")
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url(JOB_URL)

    expect(page.locator("#job-progress")).to_have_js_property("value", 100)
    expect(page.locator(".item")).to_have_count(3)
    expect(page.locator(".item").first).to_contain_text("photo-0.png")
    _images_loaded(page, "after", 3)
    expect(page.locator(".item").first).to_contain_text("local/finish")


def test_cancel_stops_a_running_job(page: Page, open_console: Console, files: Path) -> None:
    open_console.gated.gate.clear()
    picture = files / "blue.png"
    picture.write_bytes(png((20, 20, 220)))
    _start(page, "model:test/gated-image")
    page.set_input_files("#f-item-image", str(picture))
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url(JOB_URL)

    page.get_by_role("button", name="Cancel job").click()

    expect(page.locator("[data-field=status]")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    expect(page.locator(".item .status")).to_have_text("cancelled")


def test_retry_runs_only_the_failed_items_again(page: Page, open_console: Console) -> None:
    open_console.echo.broken.add("refused")
    _start(page, "model:test/echo")
    page.fill("#f-item-text", "refused")
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url(JOB_URL)
    expect(page.locator("[data-field=status]")).to_have_text("failed")
    expect(page.locator(".item .error")).to_contain_text("refuses 'refused'")
    calls_before = open_console.echo.calls["refused"]

    open_console.echo.broken.discard("refused")
    page.get_by_role("button", name="Retry failed items").click()

    expect(page.locator("[data-field=status]")).to_have_text("completed")
    expect(page.locator(".item .result-text")).to_have_text("echo refused")
    assert open_console.echo.calls["refused"] == calls_before + 1


def test_jobs_page_filters_and_badge_follow_running_work(
    page: Page, open_console: Console, files: Path
) -> None:
    open_console.gated.gate.clear()
    picture = files / "green.png"
    picture.write_bytes(png((20, 200, 20)))
    _start(page, "model:test/gated-image")
    page.set_input_files("#f-item-image", str(picture))
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url(JOB_URL)
    job_id = page.url.rsplit("/", 1)[-1]

    page.goto("/console/jobs")
    row = page.locator(f"[data-job-row='{job_id}']")
    badge = page.locator(f"[data-job-badge='{job_id}']")
    expect(badge).to_contain_text("test/gated-image 0/1")

    open_console.gated.gate.set()

    # Both refresh on their own: the row's bar fills, the badge goes once nothing runs.
    expect(row.locator("progress")).to_have_js_property("value", 100)
    expect(row).to_contain_text("completed")
    expect(badge).to_have_count(0)
    for query, shown in [
        ("status=processing", 0),
        ("status=pending", 0),
        ("status=completed", 1),
        ("recipe=model", 1),
        ("recipe=image-finish", 0),
        ("source=v1", 1),
        ("source=descriptions", 0),
    ]:
        page.goto(f"/console/jobs?{query}")
        expect(page.locator(f"[data-job-row='{job_id}']")).to_have_count(shown)
