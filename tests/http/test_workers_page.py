"""The registered workers in the API (``GET /api/workers``) and Studio (``/studio/workers``),
on both stores: the serving process's own worker shows alive, with what it holds, and every
value a worker wrote is escaped."""

from __future__ import annotations

import os
import time

from framework.store import open_store
from framework.store.workers import WorkerInfo
from tests.http.conftest import Served


async def test_the_api_lists_the_registered_workers(served: Served) -> None:
    answer = await served.client.get("/api/workers")
    assert answer.status_code == 200
    [worker] = answer.json()["workers"]
    assert worker["pid"] == os.getpid() and worker["state"] == "alive"
    assert worker["held"] == 0 and worker["instances"] == []
    assert worker["dead_at"] is None and len(worker["code_version"]) == 12


async def test_studio_shows_the_workers_escaped_and_links_them(served: Served) -> None:
    url = served.env.app.database_url
    other = open_store(url)
    await other.open()
    try:
        hostile = WorkerInfo("h:1:<i>x</i>", "<b>evil</b>", 7, "0.1.0", "<s>v</s>", 3, time.time())
        await other.register_worker(hostile)
        page = await served.client.get("/studio/workers")
        assert page.status_code == 200
        html = page.text
        assert 'href="/studio/workers" class="active"' in html
        assert "&lt;b&gt;evil&lt;/b&gt;" in html and "<b>evil</b>" not in html
        assert "h:1:&lt;i&gt;x&lt;/i&gt;" in html and "&lt;s&gt;v&lt;/s&gt;" in html
        assert f'data-worker="{served.env.worker.id}" data-state="alive"' in html
        assert "data-fw-poll" in html  # the page refreshes itself
        home = await served.client.get("/studio")
        assert 'href="/studio/workers"' in home.text
    finally:
        await other.close()
