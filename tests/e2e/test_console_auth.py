"""The console in a real browser with API keys: sign in, CSRF, each person's own work."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.harness import Console

JOB_URL = re.compile(r".*/console/jobs/[0-9a-f-]{36}$")


def _sign_in(context: BrowserContext, key: str) -> Page:
    page = context.new_page()
    page.goto("/console/jobs")
    page.wait_for_url(re.compile(r".*/console/sign-in\?next=%2Fconsole%2Fjobs$"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console/jobs$"))
    return page


def _echo_job(page: Page, text: str) -> str:
    page.goto("/?run=model:test/echo")
    page.fill("#f-item-text", text)
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url(JOB_URL)
    return page.url.rsplit("/", 1)[-1]


def test_sign_in_with_a_key_sets_a_strict_http_only_session(
    keyed_context: BrowserContext, keyed_console: Console
) -> None:
    page = keyed_context.new_page()
    page.goto("/")
    page.wait_for_url(re.compile(r".*/console/sign-in"))
    page.get_by_label("API key").fill("cvk_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")

    page = _sign_in(keyed_context, keyed_console.keys["alice"])

    expect(page.locator(".who")).to_contain_text("alice")
    (cookie,) = [c for c in keyed_context.cookies() if c["name"] == "conveyor_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert keyed_console.keys["alice"] not in cookie["value"]


def test_a_form_without_its_csrf_token_is_refused(
    keyed_context: BrowserContext, keyed_console: Console
) -> None:
    page = _sign_in(keyed_context, keyed_console.keys["alice"])
    keyed_console.gated.gate.clear()
    job_id = _echo_job(page, "kept")
    page.goto("/?run=model:test/echo")

    # The same form, its hidden token removed, sent by the browser itself.
    page.evaluate("document.querySelector('#run-form input[name=csrf_token]').remove()")
    page.fill("#f-item-text", "forged")
    page.get_by_role("button", name="Start job").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.get_by_role("alert")).to_contain_text("reload the page")

    forged = page.request.post(
        f"/console/jobs/{job_id}/cancel", form={"csrf_token": "0" * 64}, max_redirects=0
    )
    assert forged.status == 403
    page.goto("/console/jobs")
    expect(page.locator("[data-job-row]")).to_have_count(1)


def test_another_clients_job_is_invisible(
    keyed_context: BrowserContext, keyed_console: Console
) -> None:
    bob = httpx.post(
        f"{keyed_console.base_url}/v1/jobs",
        headers={"Authorization": f"Bearer {keyed_console.keys['bob']}"},
        json={"model": "test/echo", "items": [{"text": "bob's secret"}], "wait": 30},
        timeout=60,
    )
    assert bob.status_code == 200, bob.text
    bob_job = bob.json()["id"]
    page = _sign_in(keyed_context, keyed_console.keys["alice"])
    _echo_job(page, "alice's own")

    page.goto("/console/jobs")
    expect(page.locator("[data-job-row]").first).to_be_visible()
    expect(page.locator(f"[data-job-row='{bob_job}']")).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("bob's secret")
    answer = page.goto(f"/console/jobs/{bob_job}")
    assert answer is not None
    assert answer.status == 404
    events = page.request.get(f"/console/jobs/{bob_job}/events")
    assert events.status == 404
    page.goto("/console/gallery")
    expect(page.locator("main")).not_to_contain_text("bob")


def test_revoking_the_key_ends_the_session(
    keyed_context: BrowserContext, keyed_console: Console
) -> None:
    page = _sign_in(keyed_context, keyed_console.keys["bob"])
    expect(page.locator(".who")).to_contain_text("bob")

    keyed_console.revoke_key("bob")

    page.goto("/console/jobs")
    page.wait_for_url(re.compile(r".*/console/sign-in"))


def test_the_operator_creates_and_revokes_keys(
    keyed_context: BrowserContext, keyed_console: Console
) -> None:
    alice = _sign_in(keyed_context, keyed_console.keys["alice"])
    alice.goto("/console/keys")
    expect(alice.locator("main")).to_contain_text("Only an administrator")
    assert alice.request.post("/console/keys", form={"client": "mallory"}).status == 403
    alice.get_by_role("button", name="Sign out").click()

    page = _sign_in(keyed_context, keyed_console.keys["local"])
    page.goto("/console/keys")
    page.get_by_label("Client").fill("carol")
    page.get_by_role("button", name="Create key").click()
    new_key = page.get_by_label("API key").input_value()
    assert new_key.startswith("cvk_")
    row = page.locator("tr", has_text="carol")
    row.get_by_role("button", name=re.compile("Revoke")).click()
    expect(page.locator("tr", has_text="carol")).to_contain_text("revoked")
    refused = httpx.get(
        f"{keyed_console.base_url}/v1/jobs", headers={"Authorization": f"Bearer {new_key}"}
    )
    assert refused.status_code == 401
