"""Operating fw: terminate with compensation, crash-loop protection, retention and prune,
journal export and replay, OpenTelemetry spans."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from framework import InstanceFailedError, InstanceTerminatedError
from framework.runtime.app import App
from framework.runtime.records import MESSAGE_LIMIT, TRACEBACK_LIMIT
from framework.runtime.replay import export_instance, replay_export
from framework.runtime.retention import Retention, prune
from framework.testing.env import wait_for_status
from tests.apps import write_app
from tests.runtime.conftest import MakeEnv
from tests.runtime.processes import kill, start_worker, stop, wait_until_started

SAGA = """
from framework import workflow, WorkflowContext, define_step, StepContext, RollbackContext, CompensationContext

DONE: list[str] = []

async def book(ctx: StepContext, what: str) -> str:
    DONE.append(f"book {what}")
    return f"booking-{what}"

async def unbook(ctx: RollbackContext) -> None:
    DONE.append(f"unbook {ctx.output} ({ctx.error.name})")

booking = define_step("book", handler=book, rollback=unbook)

async def tell(ctx: CompensationContext) -> None:
    DONE.append(f"on_failure {ctx.error.name}")

@workflow(on_failure=tell)
async def holiday(ctx: WorkflowContext[None]) -> str:
    await ctx.run_step(booking, {"what": "flight"})
    await ctx.run_step(booking, {"what": "hotel"})
    await ctx.step.wait_for_event("confirm", type="confirm")
    await ctx.run_step(booking, {"what": "car"})
    return "booked"
"""


async def test_terminate_with_compensation_rolls_back_then_ends_terminated(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"holiday_workflow.py": SAGA})
    done = _module(env.app, "holiday").DONE
    instance = await env.start("holiday", id="h-1")
    await env.wait_for(instance, "waiting")

    await instance.terminate(compensate=True)

    with pytest.raises(InstanceTerminatedError):
        await instance.result(timeout=20)
    assert done == [
        "book flight",
        "book hotel",
        "unbook booking-hotel (Terminated)",
        "unbook booking-flight (Terminated)",
        "on_failure Terminated",
    ]
    kinds = [(s.name, s.kind) for s in await instance.steps()]
    assert kinds[-3:] == [
        ("rollback:book", "rollback"),
        ("rollback:book", "rollback"),
        ("on-failure", "rollback"),
    ]


async def test_plain_terminate_runs_no_compensation(make_env: MakeEnv) -> None:
    env = await make_env({"holiday_workflow.py": SAGA})
    done = _module(env.app, "holiday").DONE
    instance = await env.start("holiday")
    await env.wait_for(instance, "waiting")

    await instance.terminate()

    assert (await instance.status()).status == "terminated"
    await env.idle()
    assert done == ["book flight", "book hotel"]
    assert [s.kind for s in await instance.steps()].count("rollback") == 0


async def test_prune_deletes_ended_instances_past_their_retention(make_env: MakeEnv) -> None:
    env = await make_env({"holiday_workflow.py": SAGA})
    finished = await env.start("holiday", id="finished")
    await finished.send_event("confirm")
    await finished.result(timeout=20)
    failed = await env.start("holiday", id="stopped")
    await env.wait_for(failed, "waiting")
    await failed.terminate()
    running = await env.start("holiday", id="running")
    await env.wait_for(running, "waiting")

    kept = await prune(env.app, Retention(success=3600, error=None))
    env.advance("2 hours")
    pruned = await prune(env.app, Retention(success=3600, error=None))

    assert kept.deleted == {"complete": 0}
    assert pruned.deleted == {"complete": 1}
    remaining = sorted(s.id for s in (await env.get("holiday").list()).instances)
    assert remaining == ["running", "stopped"]
    store = await env.app.store()
    assert await store.list_steps("finished") == []


async def test_export_and_replay_report_nondeterminism_before_deploy(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    env = await make_env({"holiday_workflow.py": SAGA})
    instance = await env.start("holiday", id="h-export")
    await env.wait_for(instance, "waiting")
    exported = await export_instance(env.app, "h-export")
    (tmp_path / "h.json").write_text(json.dumps(exported))

    same = await replay_export(env.app, exported)
    source = env.app.root / "workflows" / "holiday_workflow.py"
    source.write_text(
        source.read_text()
        .replace('{"what": "hotel"}', '{"what": "hostel"}')
        .replace('ctx.run_step(booking, {"what": "flight"})', 'ctx.step.do("pay", lambda: 1)')
    )
    env.app.reload()
    changed = await replay_export(env.app, exported)

    assert same.ok and same.replayed_steps == 3 and same.stopped_at == "confirm (waiting)"
    assert not changed.ok
    assert changed.nondeterminism is not None and "'pay'" in changed.nondeterminism
    assert changed.current_version != changed.recorded_version
    assert (await instance.status()).status == "waiting", "replay must not touch the instance"


async def test_fw_instance_export_and_fw_replay_commands(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"holiday_workflow.py": SAGA})
    app = App(root)
    app.install()
    log = tmp_path / "worker.log"
    worker = start_worker(root, log)
    wait_until_started(worker, log)
    try:
        instance = await app.handle("holiday").create(id="h-cli")
        await wait_for_status(instance, "waiting", timeout=20)
    finally:
        assert stop(worker) == 0
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{Path.cwd()}"}
    fw = [sys.executable, "-m", "framework"]
    export = subprocess.run(
        [*fw, "instance", "export", "h-cli", "--app", str(root), "-o", str(tmp_path / "h.json")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert export.returncode == 0, export.stderr
    ok = subprocess.run(
        [*fw, "replay", str(tmp_path / "h.json"), "--app", str(root), "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True

    source = root / "workflows" / "holiday_workflow.py"
    renamed = 'await ctx.step.do("x", lambda: 0)'
    source.write_text(
        source.read_text().replace('await ctx.run_step(booking, {"what": "hotel"})', renamed)
    )
    bad = subprocess.run(
        [*fw, "replay", str(tmp_path / "h.json"), "--app", str(root)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "non-determinism" in bad.stdout
    await app.close()


SPINNER = """
import asyncio, os
from framework import workflow, WorkflowContext

async def forever() -> None:
    with open(os.environ["FW_RUNS_LOG"], "a") as runs:
        runs.write(f"{os.getpid()}\\n")
    await asyncio.sleep(3600)

@workflow
async def spinner(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("forever", forever)
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_crash_loop_ends_at_the_death_after_the_first_run_and_limit_recoveries(
    tmp_path: Path, database_url: str
) -> None:
    settings = '[runtime]\nlease = "1 second"\npoll_interval = "100 ms"\ncrash_loop_limit = 2\n'
    root = write_app(tmp_path, {"spinner_workflow.py": SPINNER}, settings)
    runs = tmp_path / "runs.log"
    env = {"FW_RUNS_LOG": str(runs), "FW_DATABASE_URL": database_url}
    app = App(root, database=database_url)
    instance = await app.handle("spinner").create(id="doomed")

    killed: list[int] = []

    async def ran_or_ended() -> bool:
        return _pids(runs) != killed or (await instance.status()).status == "errored"

    while (await instance.status()).status != "errored":
        assert len(killed) < 5, "the crash loop never ended"
        worker = start_worker(root, tmp_path / "worker.log", env)
        try:
            await _until_true(ran_or_ended, timeout=30)
        finally:
            kill(worker)
        if len(_pids(runs)) > len(killed):
            killed.append(worker.pid)

    assert _pids(runs) == killed and len(killed) == 3, "the first run and 2 recoveries"
    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=1)
    status = await instance.status()
    assert status.error is not None and status.error.name == "CrashLoopError"
    assert "died 3 times in a row, more than [runtime] crash_loop_limit = 2" in status.error.message
    crashes = status.error.details["crashes"]
    assert [c["worker"].split(":")[1] for c in crashes] == [str(pid) for pid in killed]
    await app.close()


def _pids(runs: Path) -> list[int]:
    return [int(line) for line in runs.read_text().split()] if runs.exists() else []


async def _until_true(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"still false after {timeout} s"
        await asyncio.sleep(0.05)


OTEL = """
from framework import workflow, WorkflowContext, Retries

TRIES = {"n": 0}

def flaky() -> int:
    TRIES["n"] += 1
    if TRIES["n"] == 1:
        raise RuntimeError("first try fails")
    return TRIES["n"]

@workflow
async def traced(ctx: WorkflowContext[None]) -> int:
    first = await ctx.step.do("first", lambda: 1)
    await ctx.step.sleep("pause", "1 hour")
    return first + await ctx.step.do("flaky", flaky, retries=Retries(limit=2, delay="1 s"))
"""


async def test_opentelemetry_spans_cover_executed_attempts_only(make_env: MakeEnv) -> None:
    """A replay after the sleep and after the retry wait runs `first` again from the
    journal: it gets no second span."""
    exporter = _span_exporter()
    exporter.clear()
    env = await make_env({"traced_workflow.py": OTEL})

    assert await env.run("traced", id="t-1") == 3

    spans = [
        (s.name, s.attributes["fw.step.attempt"], s.status.is_ok)
        for s in exporter.get_finished_spans()
        if s.attributes and s.attributes.get("fw.instance_id") == "t-1"
    ]
    assert spans == [
        ("fw.step first", 1, True),
        ("fw.step flaky", 1, False),
        ("fw.step flaky", 2, True),
    ]


OTEL_FAILURES = """
import sys
from framework import workflow, WorkflowContext, Retries, StepError

class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this __str__ is broken")

def unprintable() -> None:
    raise Unprintable()

def exits() -> None:
    sys.exit(3)

def loud() -> None:
    raise ValueError("m" * 1_000_000)

@workflow
async def failing(ctx: WorkflowContext[None]) -> list[str]:
    names = []
    for step in (unprintable, exits, loud):
        try:
            await ctx.step.do(step.__name__, step, retries=Retries(limit=0))
        except StepError as exc:
            names.append(exc.error_type)
    return names
"""


async def test_opentelemetry_spans_record_failures_with_safe_cut_messages(
    make_env: MakeEnv,
) -> None:
    exporter = _span_exporter()
    exporter.clear()
    env = await make_env({"failing_workflow.py": OTEL_FAILURES})

    assert await env.run("failing", id="f-1") == ["Unprintable", "SystemExit", "ValueError"]

    spans = {
        s.name: s
        for s in exporter.get_finished_spans()
        if s.attributes and s.attributes.get("fw.instance_id") == "f-1"
    }
    assert {name: s.status.is_ok for name, s in spans.items()} == {
        "fw.step unprintable": False,
        "fw.step exits": False,
        "fw.step loud": False,
    }
    unprintable = spans["fw.step unprintable"]
    assert unprintable.status.description == (
        "Unprintable: <str() failed: RuntimeError: this __str__ is broken>"
    )
    assert str(unprintable.events[0].attributes["exception.type"]).endswith(".Unprintable")
    assert spans["fw.step exits"].status.description == "SystemExit: 3"
    (event,) = spans["fw.step loud"].events
    message = str(event.attributes["exception.message"])
    assert len(message) == MESSAGE_LIMIT and message.endswith(" more characters]")
    assert len(str(event.attributes["exception.stacktrace"])) <= TRACEBACK_LIMIT


@functools.cache
def _span_exporter() -> Any:
    """An in-memory exporter behind the process's tracer provider (settable only once)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def _module(app: App, workflow: str) -> Any:
    return sys.modules[app.definition(workflow).target.__module__]


LOGGED = """
from framework import workflow, WorkflowContext

async def charge(ctx_log: object) -> int:
    return 42

@workflow
async def logged(ctx: WorkflowContext[str]) -> None:
    ctx.log.info("starting", customer=ctx.params)
    amount = await ctx.step.do("charge", charge, None)
    ctx.log.info("charged", amount=amount)
    await ctx.step.sleep("nap", "1 hour")
    await ctx.step.do("inside", lambda: ctx.log.warning("from a step") or 1)
    ctx.log.info("done")
"""


async def test_logs_are_structured_tagged_and_silent_on_replay(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = await make_env({"logged_workflow.py": LOGGED})
    with caplog.at_level(logging.INFO, logger="fw.workflow"):
        await env.run("logged", "ada", id="log-1")

    records = [r for r in caplog.records if r.name == "fw.workflow"]
    assert [r.getMessage() for r in records] == ["starting", "charged", "from a step", "done"]
    fields = [r.fw for r in records]  # type: ignore[attr-defined]
    assert fields[0] == {"workflow": "logged", "instance_id": "log-1", "step": None, "customer": "ada"}
    assert fields[1]["amount"] == 42
    assert fields[2]["step"] == "inside"
