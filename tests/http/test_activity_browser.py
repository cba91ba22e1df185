"""Studio's activity chart in a real browser (Debian's Chromium through Playwright) against
``fw serve --worker``: a day of history seeded into the store, then real runs, and the charts
of the workflow's page read by their accessible titles. Screenshot: test-artifacts/."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from framework.store import open_store
from framework.store.base import NewInstance, Status, Transition
from tests.http.conftest import write_test_app
from tests.http.servers import run_fw
from tests.http.test_studio_browser import ARTIFACTS, CHROMIUM, page, shot

__all__ = ["page"]  # the browser fixture

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists() or shutil.which("chromium") is None,
        reason="browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
    pytest.mark.slow,
]


async def seed_history(url: str, workflow: str, count: int, now: float) -> None:
    """``count`` instances of ``workflow`` that ended over the last day, most complete, some
    errored or terminated, with durations from milliseconds to minutes."""
    rng = random.Random(7)
    store = open_store(url)
    await store.open()
    try:
        for i in range(count):
            ended = now - rng.uniform(60, 86_000)
            created = ended - rng.lognormvariate(0.5, 1.6)
            roll = rng.random()
            status: Status = (
                "errored" if roll < 0.08 else "terminated" if roll < 0.1 else "complete"
            )
            instance_id = f"history-{i}"
            await store.create_instances(
                [NewInstance(instance_id, workflow, '{"name": "past"}', created)]
            )
            [claim] = await store.claim("seeder", 1, created, created + 30)
            error = None if status == "complete" else '{"name": "Boom", "message": "past"}'
            await store.apply(
                Transition(instance_id, claim.token, status=status, error=error, release=True),
                ended,
            )
    finally:
        await store.close()


def test_a_workflow_page_charts_its_activity(tmp_path: Path, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    root = write_test_app(tmp_path, rest="10 ms")
    url = f"sqlite:///{tmp_path / 'fw.db'}"
    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one
        thread.submit(asyncio.run, seed_history(url, "greet", 240, time.time())).result()
    with run_fw(
        ["serve", "--worker"], root, tmp_path / "serve.log", {"FW_DATABASE_URL": url}
    ) as server:
        with httpx.Client(base_url=server.url) as client:
            for i in range(3):
                client.post("/api/workflows/greet/instances", json={"params": {"name": f"n{i}"}})
            ended = client.get(
                "/api/instances", params={"workflow": "greet", "status": "complete", "limit": 300}
            )
            deadline = time.monotonic() + 30
            while len(ended.json()["instances"]) < 3 + 240 * 0.9 - 10:
                assert time.monotonic() < deadline, ended.text[:500]
                time.sleep(0.1)
                ended = client.get(
                    "/api/instances",
                    params={"workflow": "greet", "status": "complete", "limit": 300},
                )

        page.goto(f"{server.url}/studio/workflows/greet")
        hour = page.locator("#activity-hour")
        day = page.locator("#activity-day")
        expect(hour.locator("svg[role=img] > title")).to_have_text(
            "Last hour: throughput, duration and errors of greet"
        )
        expect(day.locator("figcaption")).to_contain_text("ended")
        expect(day.locator("figcaption")).to_contain_text("errored (")
        expect(day.locator("figcaption")).to_contain_text("p95")
        assert day.locator("rect.o-complete").count() > 20
        assert day.locator("rect.o-errored").count() >= 1
        assert hour.locator("rect.o-complete").count() >= 1  # the three runs just now
        box = day.locator("svg").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        page.locator("#activity").scroll_into_view_if_needed()
        page.locator("#activity").screenshot(path=str(ARTIFACTS / "studio-activity-chart.png"))
        shot(page, "activity-workflow-page")
        page.goto("about:blank")  # no live refresh of a stopped server
        assert server.stop() == 0, server.log.read_text()[-2000:]
