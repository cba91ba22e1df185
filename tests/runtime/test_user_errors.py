"""A user's code never takes the worker down: ``SystemExit``, ``KeyboardInterrupt``,
``CancelledError``, other ``BaseException``s and exceptions whose ``__str__`` raises are failed
attempts of the step that raised them (or failures of the body), recorded with their real type
name; a real shutdown still cancels a running step and releases its instance."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from framework import InstanceFailedError
from framework.http import create_app
from framework.runtime import worker as worker_module
from framework.runtime.app import App
from framework.runtime.records import MESSAGE_LIMIT
from framework.runtime.worker import Worker
from framework.testing import workflow_test_env
from tests.apps import write_app
from tests.http.servers import run_fw
from tests.runtime.conftest import MakeEnv
from tests.runtime.processes import REPO, kill, start_worker, wait_until_started

UNRULY = """
import asyncio, sys
from framework import workflow, WorkflowContext, Retries, StepError

ATTEMPTS: list[str] = []

class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this __str__ is broken")

class Custom(BaseException):
    pass

def misbehave(kind: str) -> None:
    ATTEMPTS.append(kind)
    if kind == "exit":
        sys.exit(3)
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "cancel":
        raise asyncio.CancelledError
    if kind == "unprintable":
        raise Unprintable()
    if kind == "base":
        raise Custom("custom")
    if kind == "generator":
        raise GeneratorExit
    if kind == "stop":
        raise StopIteration

async def misbehave_async(kind: str) -> None:
    await asyncio.sleep(0)
    misbehave(kind)

@workflow
async def unruly(ctx: WorkflowContext[dict[str, str]]) -> dict[str, object]:
    step = misbehave if ctx.params["where"] == "thread" else misbehave_async
    try:
        await ctx.step.do(
            "misbehave", step, ctx.params["kind"], retries=Retries(limit=1, delay="100 ms")
        )
    except StepError as exc:
        return {"type": exc.error_type, "attempts": exc.attempts}
    return {}
"""

BODY = """
import asyncio, sys
from framework import workflow, WorkflowContext

class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this __str__ is broken")

def one() -> int:
    return 1

@workflow
async def body(ctx: WorkflowContext[str]) -> None:
    await ctx.step.do("one", one)
    if ctx.params == "exit":
        sys.exit(4)
    if ctx.params == "interrupt":
        raise KeyboardInterrupt
    if ctx.params == "cancel":
        raise asyncio.CancelledError
    if ctx.params == "generator":
        raise GeneratorExit
    raise Unprintable()
"""

SAGA = """
import asyncio, sys
from framework import (
    workflow, WorkflowContext, define_step, StepContext, RollbackContext, CompensationContext
)

CALLS: list[str] = []

async def book(ctx: StepContext) -> str:
    return "booked"

async def unbook(ctx: RollbackContext) -> None:
    CALLS.append(f"unbook after {ctx.error.name}")
    raise KeyboardInterrupt

async def pay(ctx: StepContext) -> str:
    CALLS.append(f"pay attempt {ctx.attempt}")
    sys.exit(2)

async def tell(ctx: CompensationContext) -> None:
    CALLS.append(f"on_failure after {ctx.error.name}")
    raise asyncio.CancelledError

booking = define_step("book", handler=book, rollback=unbook)
paying = define_step("pay", handler=pay)

@workflow(on_failure=tell)
async def saga(ctx: WorkflowContext[None]) -> None:
    await ctx.run_step(booking, {})
    await ctx.run_step(paying, {})
"""

SETTINGS = '[defaults.retries]\nlimit = 1\ndelay = "100 ms"\n'

KINDS = {
    "exit": "SystemExit",
    "interrupt": "KeyboardInterrupt",
    "cancel": "CancelledError",
    "unprintable": "Unprintable",
    "base": "Custom",
    "generator": "GeneratorExit",
    "stop": "RuntimeError",  # a StopIteration, which a coroutine turns into one (PEP 479)
}


@pytest.mark.parametrize("where", ["thread", "async"])
async def test_a_step_that_exits_interrupts_cancels_or_breaks_str_is_a_failed_attempt(
    make_env: MakeEnv, where: str
) -> None:
    env = await make_env({"unruly_workflow.py": UNRULY})
    attempts = _module(env.app, "unruly").ATTEMPTS

    instances = {
        kind: await env.start("unruly", {"kind": kind, "where": where}, id=f"{kind}-{where}")
        for kind in KINDS
    }
    outputs = {kind: await i.result(timeout=30) for kind, i in instances.items()}

    assert outputs == {kind: {"type": name, "attempts": 2} for kind, name in KINDS.items()}
    assert sorted(attempts) == sorted([*KINDS, *KINDS])
    for kind, instance in instances.items():
        (step,) = await instance.steps()
        assert step.status == "errored" and step.attempts == 2
        assert step.error is not None and step.error.name == KINDS[kind]
        assert step.error.traceback and "misbehave" in step.error.traceback
    (step,) = await instances["unprintable"].steps()
    assert step.error is not None
    assert step.error.message == "<str() failed: RuntimeError: this __str__ is broken>"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ("exit", "SystemExit"),
        ("interrupt", "KeyboardInterrupt"),
        ("cancel", "CancelledError"),
        ("generator", "GeneratorExit"),
        ("unprintable", "Unprintable"),
    ],
)
async def test_a_body_that_exits_interrupts_cancels_or_breaks_str_ends_errored(
    make_env: MakeEnv, params: str, name: str
) -> None:
    env = await make_env({"body_workflow.py": BODY})

    instance = await env.start("body", params)

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)
    status = await instance.status()
    assert status.error is not None and status.error.name == name
    assert status.error.step is None
    assert [s.status for s in await instance.steps()] == ["complete"]


async def test_handlers_rollbacks_and_on_failure_that_exit_or_cancel_are_failed_attempts(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"saga_workflow.py": SAGA}, settings=SETTINGS)
    calls = _module(env.app, "saga").CALLS

    instance = await env.start("saga")

    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)
    status = await instance.status()
    assert status.error is not None
    assert (status.error.name, status.error.step) == ("SystemExit", "pay")
    assert calls == [
        "pay attempt 1",
        "pay attempt 2",
        "unbook after SystemExit",
        "unbook after SystemExit",
        "on_failure after SystemExit",
        "on_failure after SystemExit",
    ]
    steps = {s.name: s for s in await instance.steps()}
    assert {name: (s.status, s.attempts) for name, s in steps.items()} == {
        "book": ("complete", 1),
        "pay": ("errored", 2),
        "rollback:book": ("errored", 2),
        "on-failure": ("errored", 2),
    }
    errors = {name: s.error.name for name, s in steps.items() if s.error is not None}
    assert errors == {
        "pay": "SystemExit",
        "rollback:book": "KeyboardInterrupt",
        "on-failure": "CancelledError",
    }


HANGING = """
import asyncio
from framework import workflow, WorkflowContext

STARTED = asyncio.Event()
RUNS: list[int] = []

async def hang() -> str:
    RUNS.append(len(RUNS) + 1)
    STARTED.set()
    if len(RUNS) == 1:
        await asyncio.sleep(3600)
    return "done"

@workflow
async def hanging(ctx: WorkflowContext[None]) -> str:
    return await ctx.step.do("hang", hang)
"""


async def test_a_shutdown_still_cancels_a_running_step_and_releases_its_instance(
    tmp_path: Path, database_url: str
) -> None:
    root = write_app(tmp_path, {"hanging_workflow.py": HANGING})
    app = App(root, database=database_url)
    previous = app.install()
    try:
        module = _module(app, "hanging")
        instance = await app.handle("hanging").create(id="h-1")
        async with Worker(app, shutdown_grace=0.2):
            await asyncio.wait_for(module.STARTED.wait(), timeout=30)

        status = await instance.status()
        assert (status.status, status.error) == ("queued", None)
        assert await instance.steps() == []
        async with Worker(app):
            assert await instance.result(timeout=30) == "done"
        (step,) = await instance.steps()
        assert (step.status, step.attempts, step.error) == ("complete", 1, None)
        assert module.RUNS == [1, 2]
    finally:
        await app.close()
        app.uninstall(previous)


STUBBORN = """
import asyncio
from framework import workflow, WorkflowContext

STARTED = asyncio.Event()
RUNS: list[int] = []

async def stubborn() -> str:
    RUNS.append(len(RUNS) + 1)
    STARTED.set()
    while len(RUNS) == 1:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # swallowed: the step never ends by itself
    return "done"

@workflow
async def stubborn_flow(ctx: WorkflowContext[None]) -> str:
    return await ctx.step.do("stubborn", stubborn)
"""


async def test_a_step_that_swallows_its_cancellation_does_not_hang_the_stop(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop waits for such a step a bounded time, then releases its instance (the
    abandoned step can no longer write: its lease is gone), and another worker runs it."""
    monkeypatch.setattr(worker_module, "STOP_WAIT", 0.5)
    root = write_app(tmp_path, {"stubborn_workflow.py": STUBBORN})
    app = App(root, database=database_url)
    previous = app.install()
    try:
        module = _module(app, "stubborn")
        instance = await app.handle("stubborn").create(id="s-1")
        worker = Worker(app, shutdown_grace=0.2)
        await worker.start()
        await asyncio.wait_for(module.STARTED.wait(), timeout=30)
        await asyncio.wait_for(worker.stop(), timeout=30)
        assert (await instance.status()).status == "queued"
        async with Worker(app):
            assert await instance.result(timeout=30) == "done"
        assert module.RUNS == [1, 2]
    finally:
        await app.close()
        app.uninstall(previous)


def _module(app: App, workflow: str) -> Any:
    return sys.modules[app.definition(workflow).target.__module__]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("command", ["worker", "serve --worker"])
async def test_worker_processes_survive_steps_that_exit_interrupt_or_cancel(
    tmp_path: Path, database_url: str, command: str
) -> None:
    root = write_app(
        tmp_path, {"unruly_workflow.py": UNRULY}, '[runtime]\npoll_interval = "100 ms"\n'
    )
    app = App(root, database=database_url)
    log = tmp_path / "process.log"
    env = {"FW_DATABASE_URL": database_url}
    with ExitStack() as stack:
        if command == "worker":
            process = start_worker(root, log, env)
            stack.callback(_kill_if_running, process)
            wait_until_started(process, log)
            url = None
        else:
            running = stack.enter_context(run_fw(["serve", "--worker"], root, log, env))
            process, url = running.process, running.url
        instances = {
            (kind, where): await app.handle("unruly").create(
                {"kind": kind, "where": where}, id=f"{kind}-{where}"
            )
            for kind in KINDS
            for where in ("thread", "async")
        }

        outputs = {key: await i.result(timeout=60) for key, i in instances.items()}

        assert outputs == {
            (kind, where): {"type": KINDS[kind], "attempts": 2} for kind, where in instances
        }
        assert process.poll() is None, log.read_text()[-3000:]
        if url is not None:
            async with httpx.AsyncClient(base_url=url) as client:
                shown = await client.get("/api/instances/exit-thread")
                assert shown.status_code == 200 and shown.json()["status"] == "complete"
                assert (await client.get("/studio")).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    assert "stopped" in log.read_text()
    await app.close()


def _exited_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill_if_running(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        kill(process)
    if process.stdout is not None:  # else a later test fails on its ResourceWarning
        process.stdout.close()


BUSY = """
import os
from framework import workflow, WorkflowContext

async def busy() -> None:
    with open(os.environ["FW_BUSY_MARK"], "w") as mark:
        mark.write("started")
    while True:  # holds the event loop: signals reach Python code only inside this step
        pass

@workflow
async def busy_flow(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("busy", busy)
"""

IN_PROCESS = """
import asyncio, sys
from pathlib import Path
from framework import Worker
from framework.runtime.app import App

async def main() -> None:
    async with Worker(App(Path(sys.argv[1]), database=sys.argv[2])):
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.timeout(120)
async def test_ctrl_c_twice_still_stops_an_in_process_worker_mid_step(
    tmp_path: Path, database_url: str
) -> None:
    root = write_app(tmp_path, {"busy_workflow.py": BUSY})
    script = tmp_path / "run_worker.py"
    script.write_text(IN_PROCESS)
    mark = tmp_path / "started"
    app = App(root, database=database_url)
    instance = await app.handle("busy").create(id="busy-1")
    environment = {
        **os.environ,
        "FW_BUSY_MARK": str(mark),
        "PYTHONPATH": f"{root.parent}{os.pathsep}{REPO}",
    }
    process = subprocess.Popen(
        [sys.executable, str(script), str(root), database_url],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        while not mark.exists():
            assert process.poll() is None, process.communicate()[0].decode()[-3000:]
            await asyncio.sleep(0.05)

        # The first Ctrl-C makes asyncio.run cancel the main task; the next ones raise
        # KeyboardInterrupt (two signals sent at once may arrive as one, so repeat).
        for _ in range(150):
            process.send_signal(signal.SIGINT)
            if await asyncio.to_thread(_exited_within, process, 0.2):
                break
        output = process.communicate(timeout=30)[0].decode()
    finally:
        _kill_if_running(process)

    assert process.returncode != 0 and "KeyboardInterrupt" in output, output[-3000:]
    assert (await instance.status()).status == "running"
    assert await instance.steps() == [], "the interrupted attempt was recorded as a failure"
    await app.close()


EXITS_AT_IMPORT = """
import sys
from framework import workflow, WorkflowContext

sys.exit(2)  # a module that parses its command line when imported

@workflow
async def exits(ctx: WorkflowContext[None]) -> None:
    return None
"""

LOUD_AT_IMPORT = """
from framework import workflow, WorkflowContext

raise ValueError("m" * 1_000_000)

@workflow
async def loud(ctx: WorkflowContext[None]) -> None:
    return None
"""

FINE = """
from framework import workflow, WorkflowContext

@workflow
async def fine(ctx: WorkflowContext[None]) -> str:
    return "fine"
"""


async def test_workflow_modules_that_exit_or_fail_loudly_at_import_are_reported_not_raised(
    tmp_path: Path, database_url: str
) -> None:
    modules = {
        "exits_workflow.py": EXITS_AT_IMPORT,
        "loud_workflow.py": LOUD_AT_IMPORT,
        "fine_workflow.py": FINE,
    }
    root = write_app(tmp_path, modules)
    async with workflow_test_env(root, database=database_url) as env:
        transport = httpx.ASGITransport(app=create_app(env.app, token=""))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            listed = await client.get("/api/workflows")
            studio = await client.get("/studio")

        assert await env.run("fine") == "fine"
    assert listed.status_code == studio.status_code == 200
    errors = {w["name"]: w["load_error"] for w in listed.json()["workflows"]}
    assert errors["exits"] == "SystemExit: 2"
    assert errors["fine"] is None
    assert errors["loud"].startswith("ValueError: mmm") and errors["loud"].endswith("characters]")
    assert len(errors["loud"]) <= MESSAGE_LIMIT + len("ValueError: ")


ODD_NAMES = """
from framework import workflow, WorkflowContext

def one() -> int:
    return 1

@workflow
async def odd_names(ctx: WorkflowContext[str]) -> int:
    if ctx.params == "event-nul":
        await ctx.step.wait_for_event("go", type="go\\x00", timeout="1 s")
    elif ctx.params == "event-number":
        await ctx.step.wait_for_event("go", type=5, timeout="1 s")  # type: ignore[arg-type]
    elif ctx.params == "until-nan":
        await ctx.step.sleep_until("nap", float("nan"))
    else:
        names = {"nul": "a\\x00b", "surrogate": "\\ud800", "empty": "", "long": "n" * 513}
        await ctx.step.do(names[ctx.params], one)
    return 0
"""


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("nul", "step name 'a\\x00b' holds a NUL character"),
        ("surrogate", "step name '\\ud800' holds half of a surrogate pair, which has no UTF-8 form"),
        ("empty", "step name '' is empty"),
        ("long", "step name 'nnnn"),
        ("event-nul", "event type 'go\\x00' holds a NUL character"),
        ("event-number", "event type 5 is of type int, not str"),
        ("until-nan", "sleep_until 'nap': nan is not a moment"),
    ],
)
async def test_step_names_and_event_types_that_could_not_be_journaled_fail_the_body_clearly(
    make_env: MakeEnv, params: str, message: str
) -> None:
    """Before, PostgreSQL refused the journal row of such a step again and again (the instance
    stayed running, then crash-looped), and SQLite raised UnicodeEncodeError."""
    env = await make_env({"odd_names_workflow.py": ODD_NAMES})

    instance = await env.start("odd-names", params)

    with pytest.raises(InstanceFailedError) as failed:
        await instance.result(timeout=60)
    assert failed.value.error.name in ("ValueError", "TypeError")
    assert failed.value.error.message.startswith(message), failed.value.error.message
    assert await instance.steps() == []



STUCK = """
import threading
from framework import workflow, WorkflowContext, Retries

RELEASE = threading.Event()

def stuck() -> None:
    RELEASE.wait()  # a call that does not return (until the test ends)

@workflow
async def stuck(ctx: WorkflowContext[None]) -> None:
    await ctx.step.do("stuck", stuck_call, timeout="200 ms", retries=Retries(limit=0))
""".replace("def stuck() -> None:", "def stuck_call() -> None:")

QUICK = """
from framework import workflow, WorkflowContext

def answer() -> str:
    return "quick"

@workflow
async def quick(ctx: WorkflowContext[None]) -> str:
    return await ctx.step.do("answer", answer, timeout="5 s")
"""


async def test_sync_steps_stuck_past_their_timeout_leave_threads_for_the_others(
    make_env: MakeEnv,
) -> None:
    """Each stuck step keeps its thread (a thread cannot be stopped); 20 of them, more than
    asyncio's default executor has threads, still leave other sync steps free to run."""
    env = await make_env({"stuck_workflow.py": STUCK, "quick_workflow.py": QUICK})
    module = sys.modules[env.app.definition("stuck").target.__module__]
    try:
        stuck = [await env.start("stuck") for _ in range(20)]
        ended = [await i.outcome(timeout=30) for i in stuck]
        assert not any(ended)  # each failed at its timeout; its thread is still stuck

        assert await (await env.start("quick")).result(timeout=10) == "quick"
    finally:
        module.RELEASE.set()


@pytest.mark.timeout(120)
async def test_a_worker_stops_at_sigterm_whatever_its_sync_steps_are_stuck_in(
    tmp_path: Path, database_url: str
) -> None:
    stuck_for_an_hour = STUCK.replace("RELEASE.wait()", "RELEASE.wait(3600)")
    root = write_app(tmp_path, {"stuck_workflow.py": stuck_for_an_hour})
    app = App(root, database=database_url)
    log = tmp_path / "worker.log"
    process = start_worker(root, log, {"FW_DATABASE_URL": database_url})
    try:
        wait_until_started(process, log)
        instance = await app.handle("stuck").create(id="stuck-1")
        assert not await instance.outcome(timeout=60)  # failed at its timeout; still stuck

        process.send_signal(signal.SIGTERM)
        assert _exited_within(process, 20), log.read_text()[-3000:]
        assert process.returncode == 0, log.read_text()[-3000:]
    finally:
        _kill_if_running(process)
        await app.close()


SELF_CANCEL = """
import asyncio
from framework import workflow, WorkflowContext

async def cancel_own_task() -> None:
    asyncio.current_task().cancel()
    await asyncio.sleep(1)

@workflow
async def self_cancel(ctx: WorkflowContext[str]) -> str:
    if ctx.params == "body":
        asyncio.current_task().cancel()
        await asyncio.sleep(1)
    else:
        await ctx.step.do("cancel", cancel_own_task)
    return "not reached"
"""


@pytest.mark.parametrize("where", ["body", "step"])
async def test_code_that_cancels_its_own_task_ends_the_instance_errored_at_once(
    make_env: MakeEnv, where: str
) -> None:
    """Not held by its worker until the lease runs out, run again and again, then blamed on
    a dying worker: the cancellation is the workflow's failure, said as such."""
    env = await make_env({"self_cancel_workflow.py": SELF_CANCEL})
    instance = await env.start("self-cancel", where)

    with pytest.raises(InstanceFailedError) as failed:
        await instance.result(timeout=20)

    assert failed.value.error is not None
    assert failed.value.error.name == "CancelledError"
    assert "cancelled the task running it" in failed.value.error.message
    assert (await instance.status()).runs == 1
    assert await (await env.start("self-cancel", "body")).outcome(timeout=20) is not None
