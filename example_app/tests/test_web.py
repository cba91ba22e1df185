"""The example app's order page (``example_app/web.py``): it follows an order live with
``workflow_status`` and stops refreshing once the order ends; fw's API and Studio are
mounted under ``/fw``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from example_app.web import app
from framework.testing import WorkflowTestEnv


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def test_the_order_page_follows_an_order_until_it_ships(
    fw_env: WorkflowTestEnv, browser: httpx.AsyncClient
) -> None:
    cool_off = "10 ms"
    params = {"order_id": "o-1", "amount": 4200, "cool_off": cool_off}
    order = await fw_env.start("order-pipeline", params, id="o-1")
    await fw_env.wait_for(order, "waiting")  # cooling off
    fw_env.advance(cool_off)
    await fw_env.idle()  # the cool-off is over: the order now waits for approval
    assert (await order.steps())[-1].name == "await-approval"

    waiting = await browser.get("/orders/o-1")
    await order.send_event("approval", {"approved": True, "by": "ada"})
    await order.result(timeout=30)
    shipped = await browser.get("/orders/o-1")

    assert waiting.status_code == 200
    assert "waiting for approval" in waiting.text
    assert '<script data-fw-poll="2000">' in waiting.text
    assert "Receipt <strong>rcpt-o-1</strong>:\n    approved and shipped" in shipped.text
    assert "data-fw-poll" not in shipped.text
    assert 'href="/fw/studio/instances/o-1"' in shipped.text


async def test_an_unknown_order_is_404(fw_env: WorkflowTestEnv, browser: httpx.AsyncClient) -> None:
    response = await browser.get("/orders/nope")

    assert response.status_code == 404
    assert "No order nope" in response.text


async def test_studio_and_the_api_are_mounted_under_fw(
    fw_env: WorkflowTestEnv, browser: httpx.AsyncClient
) -> None:
    await fw_env.run("migration", {"source_id": "legacy", "batches": 1}, id="m-1")

    api = await browser.get("/fw/api/instances/m-1")
    studio = await browser.get("/fw/studio/instances/m-1")

    assert api.json()["output"] == {"migrated": 10}
    assert studio.status_code == 200
    assert 'href="/fw/studio/workflows/migration"' in studio.text
