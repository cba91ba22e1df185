"""Error messages are cut to ``MESSAGE_LIMIT`` characters (tracebacks to ``TRACEBACK_LIMIT``)
wherever they are stored, shown or logged, and say how much was cut."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from framework import InstanceFailedError
from framework.http import create_app
from framework.runtime.records import MESSAGE_LIMIT, TRACEBACK_LIMIT, ErrorInfo, cut_text
from framework.testing import workflow_test_env
from tests.apps import write_app

SIZE = 1_000_000

LOUD = """
from framework import (
    workflow, WorkflowContext, define_step, StepContext, RollbackContext, CompensationContext
)

SIZE = 1_000_000

def shout() -> None:
    raise ValueError("m" * SIZE)

async def book(ctx: StepContext) -> str:
    return "booked"

async def unbook(ctx: RollbackContext) -> None:
    raise RuntimeError("r" * SIZE)

async def tell(ctx: CompensationContext) -> None:
    raise RuntimeError("o" * SIZE)

booking = define_step("book", handler=book, rollback=unbook)

@workflow(on_failure=tell)
async def loud(ctx: WorkflowContext[str]) -> None:
    await ctx.run_step(booking, {})
    if ctx.params == "step":
        await ctx.step.do("shout", shout)
    raise LookupError("b" * SIZE)
"""

SETTINGS = '[defaults.retries]\nlimit = 1\ndelay = "100 ms"\n'


def test_a_long_text_is_cut_to_the_limit_saying_how_much_was_cut() -> None:
    text = "m" * 50_000_000

    cut = cut_text(text)
    tail = cut_text(text, 100, keep="end")

    assert cut == "m" * 3965 + "… [cut: 49,996,035 more characters]"
    assert len(cut) == MESSAGE_LIMIT
    assert tail == "[cut: 49,999,938 earlier characters] …" + "m" * 62
    assert cut_text(cut) == cut
    assert cut_text("short") == "short"


def test_error_rows_stored_before_the_limit_are_cut_when_read() -> None:
    stored = ErrorInfo.model_construct(
        name="ValueError", message="m" * SIZE, traceback="t" * SIZE
    ).model_dump_json()

    error = ErrorInfo.model_validate_json(stored)

    assert len(error.message) == MESSAGE_LIMIT and error.message.endswith("more characters]")
    assert error.traceback is not None and len(error.traceback) == TRACEBACK_LIMIT


@pytest.mark.parametrize("where", ["step", "body"])
async def test_huge_error_messages_are_cut_in_the_store_the_api_studio_and_the_log(
    tmp_path: Path, database_url: str, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_app(tmp_path, {"loud_workflow.py": LOUD}, SETTINGS)
    caplog.set_level(logging.INFO, logger="fw")
    async with workflow_test_env(root, database=database_url) as env:
        instance = await env.start("loud", where, id="loud-1")
        with pytest.raises(InstanceFailedError):
            await instance.result(timeout=60)

        status = await instance.status()
        assert status.error is not None
        letter = "m" if where == "step" else "b"
        assert status.error.message.startswith(letter * 1000)
        _assert_cut(status.error)
        steps = {s.name: s for s in await instance.steps()}
        failed = ["rollback:book", "on-failure", *(["shout"] if where == "step" else [])]
        for name in failed:
            error = steps[name].error
            assert error is not None
            _assert_cut(error)
        if where == "step":
            assert steps["shout"].error is not None
            assert steps["shout"].error.traceback is not None
            assert ", in shout" in steps["shout"].error.traceback

        store = await env.app.store()
        row = await store.get_instance("loud-1")
        assert row is not None and row.error is not None and len(row.error) < 20_000
        assert all(len(s.error or "") < 20_000 for s in await store.list_steps("loud-1"))

        asgi = create_app(env.app, token="")
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            listed = await client.get("/api/instances?limit=5")
            shown = await client.get("/api/instances/loud-1")
            page = await client.get("/studio/instances/loud-1")
        assert listed.status_code == shown.status_code == page.status_code == 200
        assert len(listed.content) < 20_000
        assert len(shown.content) < 100_000
        assert len(page.content) < 100_000 and "more characters]" in page.text

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("fw")]
    assert any(f"{letter * 100}" in line for line in lines)
    assert max(len(line) for line in lines) < MESSAGE_LIMIT + 500


def _assert_cut(error: ErrorInfo) -> None:
    assert len(error.message) <= MESSAGE_LIMIT, error.name
    assert error.message.endswith(" more characters]"), error.name
    assert error.traceback is None or len(error.traceback) <= TRACEBACK_LIMIT
