"""A workflow's concurrency limit, with its instances running and queued behind it, as the
HTTP API, ``fw workflows list`` and Studio (in a real browser) show it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from framework.http import create_app
from framework.testing import workflow_test_env
from tests.apps import write_app
from tests.http.servers import run_fw
from tests.http.test_studio_browser import CHROMIUM, page, shot
from tests.runtime.test_concurrency import FREE, gated

__all__ = ["page"]


def fw_json(root: Path, database_url: str, *args: str) -> object:
    env = {**os.environ, "FW_DATABASE_URL": database_url, "COLUMNS": "200"}
    env["PYTHONPATH"] = f"{root.parent}{os.pathsep}{Path.cwd()}"
    done = subprocess.run(
        [sys.executable, "-m", "framework", *args, "--app", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_api_and_the_cli_show_the_limit_running_and_queued(
    tmp_path: Path, database_url: str
) -> None:
    root = write_app(tmp_path, {"gated_workflow.py": gated(1), "free_workflow.py": FREE})
    gate = tmp_path / "gate"
    async with workflow_test_env(root, database=database_url) as env:
        started = [await env.start("gated", {"gate": str(gate)}) for _ in range(3)]
        await env.wait_for(started[0], "running")
        transport = httpx.ASGITransport(app=create_app(env.app, token=""))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            one = (await client.get("/api/workflows/gated")).json()
            listed = (await client.get("/api/workflows")).json()["workflows"]
            studio = (await client.get("/studio/workflows/gated")).text
            unlimited = (await client.get("/studio/workflows/free")).text
        shown = " ".join(studio.split('id="concurrency">')[1].split("</p>")[0].split())
        assert shown == (
            "Concurrency: <strong>1 running</strong> / limit 1 · <strong>2 queued</strong> "
            "behind it"
        )
        assert 'id="concurrency"' not in unlimited
        usage = {"limit": 1, "key": None, "running": 1, "queued": 2}
        assert one["concurrency"] == usage
        assert {w["name"]: w["concurrency"] for w in listed} == {"gated": usage, "free": None}

        rows = json.loads(str(fw_json(root, database_url, "workflows", "list", "--json")))
        assert {r["name"]: r.get("concurrency") for r in rows} == {"gated": usage, "free": None}
        table = str(fw_json(root, database_url, "workflows", "list"))
        assert "1 running / limit 1, 2 queued" in table
        assert "unlimited" in table
        gate.touch()
        for instance in started:
            await instance.result(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="browser tests need /usr/bin/chromium")
def test_studio_shows_the_slots_live(tmp_path: Path, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    root = write_app(tmp_path, {"gated_workflow.py": gated(1, "customer")})
    gate = tmp_path / "gate"
    with run_fw(["serve", "--worker"], root, tmp_path / "serve.log") as server:
        for n, customer in enumerate(["a", "a", "b"]):
            body = {"id": f"g{n}", "params": {"gate": str(gate), "customer": customer}}
            created = httpx.post(f"{server.url}/api/workflows/gated/instances", json=body)
            assert created.status_code == 201, created.text
        page.goto(f"{server.url}/studio/workflows/gated")
        slots = page.locator("#concurrency")
        expect(slots).to_have_text(
            "Concurrency: 2 running · limit 1 per customer · 1 queued behind them", timeout=20_000
        )
        shot(page, "concurrency")
        gate.touch()
        expect(slots).to_contain_text("0 running", timeout=20_000)
        expect(slots).to_contain_text("0 queued")
        page.goto("about:blank")  # the workflow page polls for as long as it is open
        assert server.stop() == 0, server.log.read_text()[-2000:]


async def test_params_without_the_key_are_a_422_and_the_remote_client_names_it(
    tmp_path: Path, database_url: str
) -> None:
    from framework.client.answers import Call, error_of
    from framework.errors import ConcurrencyKeyError

    root = write_app(tmp_path, {"gated_workflow.py": gated(1, "customer.id")})
    async with workflow_test_env(root, database=database_url) as env:
        transport = httpx.ASGITransport(app=create_app(env.app, token=""))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            url = "/api/workflows/gated/instances"
            refused = await client.post(url, json={"params": {"gate": "x"}})
            listed = (await client.get(url)).json()
        assert refused.status_code == 422
        assert refused.json()["error"] == "no_concurrency_key"
        assert "'customer.id'" in refused.json()["message"]
        assert listed["instances"] == []
        error = error_of(refused, url, Call(workflow="gated"))
        assert isinstance(error, ConcurrencyKeyError)
        assert str(error) == refused.json()["message"]
