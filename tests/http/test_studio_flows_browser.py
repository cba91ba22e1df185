"""Studio's flows in a real browser (Debian's Chromium through Playwright) against ``fw serve
--worker``: rejected forms land on pages that reload (F5) and refresh live (post-redirect-get),
and tracebacks read well.

Screenshots land in ``$FW_TEST_ARTIFACTS`` (default ``test-artifacts/`` at the repository's
root, ignored by git); each test prints where.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.http.servers import Running
from tests.http.test_studio_browser import ARTIFACTS, page, pytestmark, server

__all__ = ["page", "pytestmark", "server"]


def shot(page: object, name: str) -> Path:
    """A full-page screenshot named ``studio-<name>.png``; its path is printed."""
    folder = Path(os.environ.get("FW_TEST_ARTIFACTS", ARTIFACTS))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"studio-{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    print(f"screenshot: {path}")
    return path


def test_a_traceback_shows_the_users_frames_unwrapped(server: Running, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    message = "the card was declined " * 12
    with httpx.Client(base_url=server.url) as client:
        client.post("/api/workflows/boom/instances", json={"id": "tb", "params": message})

    page.goto(f"{server.url}/studio/instances/tb")
    expect(page.locator("#instance-badge .badge")).to_have_text("errored", timeout=20_000)
    step = page.locator("tr.step[data-step=explode]")
    step.locator("summary:has-text('Error details')").click()
    step.locator("summary:has-text('Traceback')").click()
    traceback = step.locator("pre.traceback")
    expect(traceback).to_contain_text(", in explode")
    expect(traceback).not_to_contain_text("framework/runtime")
    layout = traceback.evaluate(
        """pre => ({
            whiteSpace: getComputedStyle(pre).whiteSpace,
            scrolls: pre.scrollWidth > pre.clientWidth,
            pageWidth: document.documentElement.scrollWidth,
            viewport: window.innerWidth,
        })"""
    )
    assert layout["whiteSpace"] == "pre"  # lines are kept whole: the carets line up
    assert layout["scrolls"] is True  # the long message line scrolls inside the box
    assert layout["pageWidth"] <= layout["viewport"]  # the table does not widen the page
    shot(page, "flows-traceback")


def test_rejected_forms_land_on_pages_that_reload_and_refresh_live(
    server: Running, page: object
) -> None:
    import re

    from playwright.sync_api import Page, Response, expect

    assert isinstance(page, Page)
    base = server.url
    failed: list[str] = []

    def note(response: Response) -> None:
        post_not_redirected = response.request.method != "GET" and response.status != 303
        if response.status >= 400 or post_not_redirected:
            failed.append(f"{response.request.method} {response.url} {response.status}")

    page.on("response", note)

    # A rejected start: the browser lands on the workflow's page, which F5 shows again.
    page.goto(f"{base}/studio/workflows/greet")
    page.fill("input[name='p.times']", "many")
    page.click("button:has-text('Start instance')")
    expect(page).to_have_url(re.compile(r"/studio/workflows/greet\?form=[0-9a-f]{16}#start$"))
    page.reload()
    expect(page.locator("[data-field=name] .field-error")).to_have_text("Field required")
    expect(page.locator("[data-field=times] .field-error")).to_contain_text("valid integer")
    expect(page.locator("input[name='p.times']")).to_have_value("many")
    shot(page, "flows-1-start-rejected-after-reload")

    # Corrected, it starts; the instance page refreshes itself to `complete`.
    page.fill("input[name='p.name']", "ada")
    page.fill("input[name='p.times']", "1")
    page.fill("input[name=id]", "prg-1")
    page.click("button:has-text('Start instance')")
    expect(page).to_have_url(re.compile(r"/studio/instances/prg-1\?done=started$"))
    expect(page.locator("#instance-badge .badge")).to_have_text("complete", timeout=20_000)

    # A rejected event: the instance's page with the input, live; it turns complete.
    with httpx.Client(base_url=base) as client:
        client.post("/api/workflows/approval/instances", json={"id": "prg-2", "params": {}})
        page.goto(f"{base}/studio/instances/prg-2")
        expect(page.locator("#instance-badge .badge")).to_have_text("waiting")
        page.fill("textarea[name=payload]", '{"approved": tru')
        page.click("button:has-text('Send event')")
        expect(page).to_have_url(
            re.compile(r"/studio/instances/prg-2\?form=[0-9a-f]{16}#instance-event$")
        )
        page.reload()
        expect(page.locator("#instance-event .field-error")).to_contain_text("not valid JSON")
        expect(page.locator("textarea[name=payload]")).to_have_value('{"approved": tru')
        page.evaluate("window.notReloaded = true")
        ticks = page.evaluate("window.fwLive.ticks")
        client.post(
            "/api/instances/prg-2/events", json={"type": "approval", "payload": {"ok": True}}
        )
        expect(page.locator("#instance-badge .badge")).to_have_text("complete", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("window.fwLive.ticks") > ticks
    page.wait_for_function("window.fwLive.stopped === true")
    shot(page, "flows-2-event-rejected-then-complete")
    assert failed == []


def test_the_instances_list_shows_new_instances_without_a_reload(
    server: Running, page: object
) -> None:
    import re

    from playwright.sync_api import Page, Response, expect

    assert isinstance(page, Page)
    base = server.url
    statuses: list[int] = []

    def note(response: Response) -> None:
        if "/studio/instances" in response.url:
            statuses.append(response.status)

    with httpx.Client(base_url=base) as client:
        client.post("/api/workflows/echo/instances", json={"id": "old", "params": 1})
        page.goto(f"{base}/studio/instances")
        expect(page.locator("tr[data-instance=old]")).to_contain_text("complete", timeout=20_000)
        page.goto(f"{base}/studio/instances")  # every row shown has ended
        page.on("response", note)
        page.evaluate("window.notReloaded = true")
        page.wait_for_function("() => (window.fwLive.unchanged || 0) >= 2")  # 304s meanwhile
        client.post("/api/workflows/echo/instances", json={"id": "new", "params": 2})
        expect(page.locator("tr[data-instance=new]")).to_contain_text("complete", timeout=20_000)

    assert page.evaluate("window.notReloaded") is True
    assert page.locator("tbody tr").first.get_attribute("data-instance") == "new"
    assert 304 in statuses and 200 in statuses and max(statuses) < 400
    created = page.locator("tr[data-instance=new] time").first
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", created.get_attribute("title") or "")
    created.evaluate("t => t.setAttribute('datetime', new Date(Date.now() - 185e3).toISOString())")
    page.evaluate("window.fwRelativeTimes()")  # what its 10 s timer does
    expect(created).to_have_text("3 min ago")
    shot(page, "flows-3-list-new-instance")
