"""What an instance waits for, its steps' attempts and its logs, in a real browser (Debian's
Chromium through Playwright) against ``fw serve --worker``: a retry wait offers "Retry now",
an event wait the event form with its type, a timer says until when; a retried step shows a
row per attempt; ``ctx.log`` lines show under the instance and their step, with levels.

Screenshots land in ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.apps import write_app
from tests.http.servers import Running, run_fw
from tests.http.test_studio_browser import ARTIFACTS, pytestmark  # noqa: F401
from tests.http.test_studio_browser import page as page

FLAKY = """
from pathlib import Path
from framework import workflow, WorkflowContext, Retries

def charge(marker: str, amount: int) -> int:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise ConnectionError("the bank is down")
    return amount * 100

@workflow
async def flaky(ctx: WorkflowContext[str]) -> object:
    ctx.log.info("order received", amount=42)

    def logged_charge(marker: str, amount: int) -> int:
        ctx.log.warning("calling the bank", amount=amount)
        return charge(marker, amount)

    cents = await ctx.step.do(
        "charge", logged_charge, ctx.params, 42, retries=Retries(limit=3, delay="1 hour")
    )
    ctx.log.error("waiting for a human", cents=cents)
    return await ctx.step.wait_for_event("approval", type="approval", timeout="7 days")
"""

NAPPER = """
from framework import workflow, WorkflowContext

@workflow
async def napper(ctx: WorkflowContext[None]) -> None:
    await ctx.step.sleep("nap", "1 hour")
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    root = write_app(tmp_path, {"flaky_workflow.py": FLAKY, "napper_workflow.py": NAPPER})
    with run_fw(["serve", "--worker"], root, tmp_path / "serve.log") as running:
        yield running
        assert running.stop() == 0, running.log.read_text()[-2000:]


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"history-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_waits_attempts_and_logs_in_a_browser(
    server: Running, page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    base = server.url
    marker = str(tmp_path / "failed-once")
    with httpx.Client(base_url=base) as client:
        client.post("/api/workflows/flaky/instances", json={"id": "f-1", "params": marker})
        client.post("/api/workflows/napper/instances", json={"id": "n-1", "params": None})

    # A retry wait: when, after which error, and "Retry now"; no event form.
    page.goto(f"{base}/studio/instances/f-1")
    waiting = page.locator("#waiting-for")
    expect(waiting).to_contain_text("retry of 'charge' at", timeout=15_000)
    expect(page.locator("button:has-text('Retry now')")).to_be_visible()
    expect(page.locator("#instance-event select[name=type]")).to_have_count(0)
    shot(page, "1-waiting-for-a-retry")

    # Retry now: the step runs again at once; the instance then waits for its event.
    page.click("button:has-text('Retry now')")
    expect(waiting).to_contain_text("event 'approval' until", timeout=15_000)
    expect(page.locator("button:has-text('Retry now')")).to_have_count(0)
    expect(page.locator("#instance-event select[name=type] option")).to_have_text(["approval"])

    # The retried step: a row per attempt, the failed one with its error.
    first = page.locator("tr.attempt[data-step=charge][data-attempt='1']")
    expect(first).to_contain_text("failed")
    expect(first).to_contain_text("ConnectionError: the bank is down")
    expect(page.locator("tr.attempt[data-step=charge][data-attempt='2']")).to_contain_text(
        "succeeded"
    )
    # The logs: under the instance with levels and fields, and under their step.
    lines = page.locator("#instance-logs tr.log-line")
    expect(lines).to_have_count(4)
    expect(lines.nth(0)).to_contain_text("order received")
    expect(lines.nth(0)).to_contain_text("body")
    expect(lines.nth(0).locator(".level")).to_have_text("info")
    expect(lines.nth(1)).to_contain_text("calling the bank")
    expect(lines.nth(1).locator(".level")).to_have_text("warning")
    expect(lines.nth(3).locator(".level")).to_have_text("error")
    step_logs = page.locator("tr.step[data-step=charge] details.step-logs")
    step_logs.locator("summary").click()
    expect(step_logs.locator("tr.log-line")).to_have_count(2)
    shot(page, "2-waiting-for-an-event-attempts-and-logs")

    # Send the awaited event from the form.
    page.fill("#instance-event textarea[name=payload]", json.dumps({"by": "ada"}))
    page.click("button:has-text('Send event')")
    expect(page.locator("#instance-badge .badge")).to_have_text("complete", timeout=15_000)

    # A timer says until when; the list says what each instance waits for.
    page.goto(f"{base}/studio/instances/n-1")
    expect(waiting).to_contain_text("timer 'nap' until")
    page.goto(f"{base}/studio/instances")
    expect(page.locator("tr[data-instance=n-1] .wait-detail")).to_contain_text("timer 'nap'")
    shot(page, "3-instances-list-waits")
