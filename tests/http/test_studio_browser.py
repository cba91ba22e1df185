"""Studio in a real browser (Debian's Chromium through Playwright) against ``fw serve
--worker``: start an instance from the form and watch it complete without a reload, read its
step timeline, see invalid params inline, and terminate a waiting instance.

Screenshots of each page land in ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import write_test_app
from tests.http.servers import Running, run_fw

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists() or shutil.which("chromium") is None,
        reason="browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
    pytest.mark.slow,
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    """``fw serve --worker`` on the test app; greet sleeps 5 s, so a page sees it live (a
    loaded machine took over 2 s from the start to the instance's page showing)."""
    root = write_test_app(tmp_path, rest="5 seconds")
    with run_fw(["serve", "--worker"], root, tmp_path / "serve.log") as running:
        yield running
        assert running.stop() == 0, running.log.read_text()[-2000:]


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    """A Chromium page with a fresh profile; fails the test on any page error."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(10_000)
        browser_page = context.new_page()
        problems: list[str] = []
        browser_page.on("pageerror", lambda error: problems.append(str(error)))
        browser_page.on(
            "console", lambda m: problems.append(m.text) if is_problem(m.type, m.text) else None
        )
        try:
            yield browser_page
        finally:
            context.close()
        assert problems == []


def is_problem(kind: str, text: str) -> bool:
    """A console error, but for the 422 a form with invalid params answers on purpose."""
    return kind == "error" and "status of 422" not in text


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"studio-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_studio_in_a_browser(server: Running, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    base = server.url

    page.goto(f"{base}/studio")
    expect(page.locator("tr[data-workflow=greet]")).to_contain_text("GREET_WORKFLOW")
    shot(page, "1-workflows")

    # Invalid params: errors next to their fields, nothing started.
    page.goto(f"{base}/studio/workflows/greet")
    page.fill("input[name='p.times']", "many")
    page.fill("textarea[name='p.tags']", "[1,")
    page.click("button:has-text('Start instance')")
    expect(page.locator("[data-field=name] .field-error")).to_have_text("Field required")
    expect(page.locator("[data-field=times] .field-error")).to_contain_text("valid integer")
    expect(page.locator("[data-field=tags] .field-error")).to_contain_text("not valid JSON")
    expect(page.locator("input[name='p.times']")).to_have_value("many")
    shot(page, "2-start-form-errors")

    # A good start opens the instance, which turns complete without a reload.
    page.fill("input[name=id]", "browser-1")
    page.fill("input[name='p.name']", "ada <b>lovelace</b>")
    page.fill("input[name='p.times']", "2")
    page.fill("textarea[name='p.tags']", '["a", "b"]')
    page.click("button:has-text('Start instance')")
    expect(page).to_have_url(re.compile(r"/studio/instances/browser-1\?done=started$"))
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#instance-badge .badge")).not_to_have_text("complete")
    expect(page.locator("#instance-badge .badge")).to_have_text("complete", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("window.fwLive.ticks") >= 1
    page.wait_for_function("window.fwLive.stopped === true")  # all terminal: polling stops

    # The timeline: both steps, the sleep with its wake time, an output.
    say = page.locator("tr.step[data-step=say]")
    expect(say).to_contain_text("complete")
    expect(page.locator("tr.step[data-step=rest]")).to_contain_text("slept until")
    say.locator("details summary:has-text('Output')").click()
    expect(say.locator("details[id$='-output'] pre")).to_contain_text(
        "hello ada <b>lovelace</b> hello ada"
    )
    expect(page.locator("#output")).to_contain_text('"mood": "happy"')
    shot(page, "3-instance-complete")

    # Terminate a waiting instance from its page.
    with httpx.Client(base_url=base) as client:
        client.post("/api/workflows/approval/instances", json={"id": "waits", "params": {}})
    page.goto(f"{base}/studio/instances/waits")
    expect(page.locator("#instance-badge .badge")).to_have_text("waiting")
    expect(page.locator("tr.step[data-step=await-approval]")).to_contain_text("waits for event")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Terminate')")
    expect(page.locator("#instance-badge .badge")).to_have_text("terminated")
    expect(page.locator(".alert.notice")).to_have_text("Terminated.")
    shot(page, "4-instance-terminated")

    page.goto(f"{base}/studio/instances")
    expect(page.locator("tr[data-instance=browser-1]")).to_contain_text("complete")
    expect(page.locator("tr[data-instance=waits]")).to_contain_text("terminated")
    shot(page, "5-instances")


EXAMPLE_SERVER = """
import asyncio

from example_app.web import app
from framework import Worker
from framework.http.server import address_of, bind_socket, serve

async def main() -> None:
    sock = bind_socket("127.0.0.1", 0)
    print(f"API and Studio at {address_of(sock, '127.0.0.1')}/studio", flush=True)
    async with Worker("example_app"):
        await serve(app, sock, asyncio.Event())

asyncio.run(main())
"""


def test_a_users_page_follows_an_order_live(tmp_path: Path, page: object) -> None:
    import os
    import subprocess
    import sys

    from playwright.sync_api import Page, expect

    from tests.http.servers import wait_for_address

    assert isinstance(page, Page)
    log = tmp_path / "web.log"
    env = {**os.environ, "FW_DATABASE_URL": f"sqlite:///{tmp_path / 'example.db'}"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", EXAMPLE_SERVER], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        base = wait_for_address(server, log)
        params = {"order_id": "o-7", "amount": 4200, "cool_off": "1 second"}
        with httpx.Client(base_url=base) as client:
            started = client.post(
                "/fw/api/workflows/order-pipeline/instances", json={"id": "o-7", "params": params}
            )
            assert started.status_code == 201

            page.goto(f"{base}/orders/o-7")
            page.evaluate("window.notReloaded = true")
            expect(page.locator("#message")).to_contain_text("waiting for approval", timeout=15_000)
            client.post(
                "/fw/api/instances/o-7/events",
                json={"type": "approval", "payload": {"approved": True}},
            )
            expect(page.locator("#status")).to_have_text("complete", timeout=15_000)

        expect(page.locator("#message")).to_contain_text("rcpt-o-7")
        assert page.evaluate("window.notReloaded") is True
        page.wait_for_function("window.fwLive.stopped === true")
        shot(page, "6-order-page")
    finally:
        server.kill()
        server.wait(timeout=10)


LEGACY_IDS = [".", "..", "w/output", "a\nb", "~x", "100%", "q?x#y"]


def store_legacy_instances(database_url: str, ids: list[str]) -> None:
    """Store instances of ``echo`` with ids from before the id rule, as an older fw did."""
    import asyncio
    import time

    from framework.store import open_store
    from framework.store.base import NewInstance

    async def create() -> None:
        store = open_store(database_url)
        await store.open()
        try:
            now = time.time()
            await store.create_instances([NewInstance(i, "echo", "7", now) for i in ids])
        finally:
            await store.close()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this thread
        thread.submit(asyncio.run, create()).result()


def test_links_to_any_stored_id_work_in_a_browser(tmp_path: Path, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    database = f"sqlite:///{tmp_path / 'legacy.db'}"
    root = write_test_app(tmp_path)
    store_legacy_instances(database, LEGACY_IDS)
    env = {"FW_DATABASE_URL": database}
    with run_fw(["serve", "--worker"], root, tmp_path / "serve.log", env) as server:
        base = server.url
        for instance_id in LEGACY_IDS:
            page.goto(f"{base}/studio/instances")
            row = page.locator("tr[data-instance]").filter(
                has=page.get_by_text(instance_id, exact=True)
            )
            row.get_by_role("link", name=instance_id, exact=True).first.click()
            expect(page.locator("h1 .mono")).to_have_text(instance_id)
            expect(page.locator("#instance-badge .badge")).to_have_text("complete")
            expect(page.locator("#output")).to_contain_text("7")
            href = page.get_by_role("link", name="Download output (JSON)").get_attribute("href")
            assert href is not None
            download = page.request.get(f"{base}{href}")
            assert download.ok and download.json() == 7, (instance_id, href)

            page.once("dialog", lambda dialog: dialog.accept())
            page.click("button:has-text('Restart')")
            expect(page.locator(".alert.notice")).to_have_text("Restarted: a worker runs it again.")
            expect(page.locator("h1 .mono")).to_have_text(instance_id)
            expect(page.locator("#instance-badge .badge")).to_have_text("complete", timeout=20_000)
        shot(page, "7-legacy-id")
        page.goto("about:blank")  # no live refresh of a stopped server
        assert server.stop() == 0, server.log.read_text()[-2000:]


def test_unreadable_values_and_refused_payloads_in_a_browser(
    server: Running, page: object, tmp_path: Path
) -> None:
    import asyncio
    import time
    from concurrent.futures import ThreadPoolExecutor

    from playwright.sync_api import Page, expect

    from framework.store import open_store

    assert isinstance(page, Page)
    base = server.url
    deep = "[" * 250 + "]" * 250
    with httpx.Client(base_url=base) as client:
        client.post("/api/workflows/approval/instances", json={"id": "old", "params": {}})
        client.post("/api/workflows/approval/instances", json={"id": "form", "params": {}})

    # A refused payload shows next to the field; the instance keeps waiting.
    page.goto(f"{base}/studio/instances/form")
    expect(page.locator("#instance-badge .badge")).to_have_text("waiting")
    page.fill("textarea[name=payload]", deep)
    page.click("button:has-text('Send event')")
    expect(page.locator("#instance-event .field-error")).to_contain_text(
        "nested 250 levels deep, over the limit of 200"
    )
    expect(page.locator("#instance-badge .badge")).to_have_text("waiting")
    shot(page, "8-refused-payload")

    # An event stored before fw refused such payloads: the page renders and says why.
    async def store_old_event() -> None:
        root = next(tmp_path.glob("app_*"))
        store = open_store(f"sqlite:///{root / '.fw' / 'fw.db'}")
        await store.open()
        try:
            await store.send_event("old", "approval", deep, time.time())
        finally:
            await store.close()

    page.goto(f"{base}/studio/instances/old")
    expect(page.locator("#instance-badge .badge")).to_have_text("waiting")
    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one
        thread.submit(asyncio.run, store_old_event()).result()
    expect(page.locator("#instance-badge .badge")).to_have_text("errored", timeout=20_000)
    wait = page.locator("tr.step[data-step=await-approval]")
    expect(wait.locator(".unreadable")).to_contain_text("Output unreadable: the stored JSON is")
    expect(page.locator(".error-box")).to_contain_text("nested deeper than 200 levels")
    expect(page.locator("#params")).to_have_text("{}")
    shot(page, "9-unreadable-output")


def test_a_read_only_login_sees_no_forms_in_a_browser(tmp_path: Path, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    token, read_token = "full-token-" + "f" * 32, "read-token-" + "r" * 32
    root = write_test_app(tmp_path)
    tokens = {"FW_API_TOKEN": token, "FW_API_READ_TOKEN": read_token}
    with run_fw(["serve", "--worker"], root, tmp_path / "serve.log", tokens) as server:
        started = httpx.post(
            f"{server.url}/api/workflows/approval/instances",
            json={"id": "ap", "params": {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert started.status_code == 201

        page.goto(f"{server.url}/studio/instances/ap")
        page.fill("input[name=token]", read_token)
        page.get_by_role("button", name=re.compile("log in", re.I)).click()
        expect(page.locator("#read-only-badge")).to_be_visible()
        expect(page.locator("#read-only-note")).to_be_visible()
        expect(page.locator("#instance-controls")).to_have_count(0)
        expect(page.locator("form.event-form")).to_have_count(0)
        shot(page, "read-only-instance")
        page.goto(f"{server.url}/studio/workflows/approval")
        expect(page.locator("#start-form")).to_have_count(0)
        expect(page.locator("#read-only-note")).to_be_visible()
        page.goto("about:blank")  # no live refresh of a stopped server
        assert server.stop() == 0, server.log.read_text()[-2000:]
