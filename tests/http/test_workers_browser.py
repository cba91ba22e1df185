"""Studio's workers page in a real browser (Debian's Chromium through Playwright) against
``fw serve --worker`` and a separate ``fw worker`` process: both show alive, each holding
what it runs; after a SIGKILL of the separate worker the page shows it dead without a reload.

Screenshots land in ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import write_test_app
from tests.http.servers import run_fw
from tests.http.test_studio_browser import CHROMIUM, page, shot
from tests.runtime.processes import kill, start_worker, wait_until_started

__all__ = ["page"]  # the Chromium page fixture

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="browser tests need /usr/bin/chromium"),
    pytest.mark.slow,
]


@pytest.mark.timeout(180)
def test_the_workers_page_follows_workers_live(tmp_path: Path, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    root = write_test_app(tmp_path, rest="2 seconds")
    with run_fw(["serve", "--worker"], root, tmp_path / "serve.log") as server:
        other = start_worker(root, tmp_path / "worker.log", concurrency=7)
        try:
            wait_until_started(other, tmp_path / "worker.log")
            page.goto(f"{server.url}/studio")
            page.click("header nav a:has-text('Workers')")
            expect(page).to_have_url(re.compile(r"/studio/workers$"))
            rows = page.locator("tr[data-worker]")
            expect(rows).to_have_count(2)
            mine = page.locator(f"tr[data-worker*=':{other.pid}:']")
            expect(mine).to_have_attribute("data-state", "alive")
            expect(mine).to_contain_text("0 of 7")
            with httpx.Client(base_url=server.url) as client:
                client.post("/api/workflows/approval/instances", json={"id": "w-1", "params": {}})
            shot(page, "6-workers")

            page.evaluate("window.notReloaded = true")
            kill(other)
            expect(mine).to_have_attribute("data-state", "dead", timeout=20_000)
            expect(mine.locator(".badge")).to_have_text("dead")
            assert page.evaluate("window.notReloaded") is True
            serving = page.locator(f"tr[data-worker]:not([data-worker*=':{other.pid}:'])")
            expect(serving).to_have_attribute("data-state", "alive")
            shot(page, "7-worker-dead")
        finally:
            if other.poll() is None:
                kill(other)
        page.goto("about:blank")  # no live refresh of a stopped server
        assert server.stop() == 0, server.log.read_text()[-2000:]
