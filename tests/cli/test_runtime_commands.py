"""The runtime commands as users run them: real `fw` processes against a real store, on
SQLite and on PostgreSQL. Every one-shot command must exit promptly: each run has a timeout."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.apps import write_app
from tests.http.servers import run_fw, wait_for_text
from tests.runtime.processes import start_worker, stop, wait_until_started

ORDERS = """
from pydantic import BaseModel, Field
from framework import workflow, WorkflowContext

class Order(BaseModel):
    order_id: str
    amount: int = Field(gt=0)

@workflow
async def orders(ctx: WorkflowContext[Order]) -> dict[str, object]:
    charged = await ctx.step.do("charge", lambda: ctx.params.amount * 100)
    approval = await ctx.step.wait_for_event("approval", type="approval")
    return {"charged": charged, "approval": approval}
"""


ONE_SHOT_TIMEOUT = 20.0
"""Seconds a one-shot command may take at most (it takes well under one; a hang at exit
runs into this)."""


def app_on(parent: Path, database_url: str) -> Path:
    """The orders app, its store set in fw.toml (as users configure it)."""
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    return write_app(parent, {"orders_workflow.py": ORDERS}, settings=settings)


@pytest.fixture
def app_dir(tmp_path: Path, database_url: str) -> Path:
    return app_on(tmp_path, database_url)


def fw(app_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env.update(PYTHONPATH=f"{app_dir.parent}{os.pathsep}{Path.cwd()}", COLUMNS="40")
    return subprocess.run(
        [sys.executable, "-m", "framework", *args, "--app", str(app_dir)],
        capture_output=True, text=True, env=env, timeout=ONE_SHOT_TIMEOUT,
    )


def test_start_show_event_list_and_control_an_instance(app_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = start_worker(app_dir, log)
    wait_until_started(worker, log)
    try:
        started = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-1", "amount": 3}', "--id", "o-1", "--json")
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["id"] == "o-1"

        sent = fw(app_dir, "event", "send", "o-1", "approval", '{"by": "ada"}')
        assert sent.returncode == 0, sent.stderr
        waited = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-1", "amount": 3}', "--id", "o-1", "--wait", "--timeout", "30", "--json")
        assert json.loads(waited.stdout)["output"] == {"charged": 300, "approval": {"by": "ada"}}

        shown = fw(app_dir, "instance", "show", "o-1", "--json")
        steps = json.loads(shown.stdout)["steps"]
        assert [(s["name"], s["kind"], s["status"]) for s in steps] == [
            ("charge", "do", "complete"), ("approval", "event", "complete"),
        ]
        human = fw(app_dir, "instance", "show", "o-1")
        assert "o-1 (orders) complete" in human.stdout and "approval" in human.stdout

        fw(app_dir, "start", "orders", "--params", '{"order_id": "o-2", "amount": 1}', "--id", "o-2")
        for action, status in (("pause", "paused"), ("resume", None), ("terminate", "terminated")):
            done = fw(app_dir, "instance", action, "o-2", "--json")
            assert done.returncode == 0, done.stderr
            if status:
                assert json.loads(done.stdout)["status"] == status

        listed = json.loads(fw(app_dir, "instances", "list", "--json").stdout)
        assert [(i["id"], i["status"]) for i in listed["instances"]] == [("o-2", "terminated"), ("o-1", "complete")]
        only = json.loads(fw(app_dir, "instances", "list", "--status", "complete", "--json").stdout)
        assert [i["id"] for i in only["instances"]] == ["o-1"]
        counts = json.loads(fw(app_dir, "workflows", "list", "--json").stdout)
        assert counts == [{
            "name": "orders", "binding": "ORDERS_WORKFLOW", "class_name": "OrdersWorkflow",
            "file": "workflows/orders_workflow.py", "counts": {"complete": 1, "terminated": 1},
        }]
    finally:
        assert stop(worker) == 0


def test_user_mistakes_are_one_line_errors_without_tracebacks(app_dir: Path) -> None:
    exports = {
        "binary.json": b"\xff\xfe{}",
        "list.json": b"[1, 2]",
        "empty.json": b'{"format": "fw.instance/1", "instance": {}, "steps": []}',
        "steps.json": b'{"format": "fw.instance/1", "instance": 5, "steps": [{"kind": 1}]}',
    }
    for name, content in exports.items():
        (app_dir / name).write_bytes(content)
    cases = {
        ("start", "order", "--params", "{}"): "unknown workflow 'order'; did you mean 'orders'?",
        ("start", "orders", "--params", '{"order_id": "x", "amount": -1}'): "invalid params: amount: Input should be greater than 0",
        ("start", "orders", "--params", "{not json"): "--params is not JSON",
        ("instance", "show", "nope"): "no instance with id 'nope'",
        ("instance", "pause", "nope\udcff"): "no instance with id 'nope\\udcff'",  # not UTF-8
        ("event", "send", "nope", "approval"): "no instance with id 'nope'",
        ("replay", "missing.json"): "missing.json: cannot read the export",
        ("replay", str(app_dir / "binary.json")): "cannot read the export: 'utf-8' codec",
        ("replay", str(app_dir / "list.json")): "not an fw instance export (format None",
        ("replay", str(app_dir / "empty.json")): "not readable: instance.seq: Field required",
        ("replay", str(app_dir / "steps.json")): "instance: Input should be a dictionary",
    }
    for args, message in cases.items():
        done = fw(app_dir, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    listed = json.loads(fw(app_dir, "instances", "list", "--json").stdout)
    assert listed["instances"] == []


def test_an_event_type_the_workflow_never_waits_for_is_refused(app_dir: Path) -> None:
    started = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-9", "amount": 1}', "--id", "o-9")
    assert started.returncode == 0, started.stderr

    sent = fw(app_dir, "event", "send", "o-9", "approvall", "{}")

    assert sent.returncode == 1, (sent.stdout, sent.stderr)
    assert (
        "workflow 'orders' never waits for an event of type 'approvall'; did you mean 'approval'?"
        in sent.stderr
    )
    assert "Traceback" not in sent.stderr
    shown = json.loads(fw(app_dir, "instance", "show", "o-9", "--json").stdout)
    assert shown["status"] == "queued" and shown["steps"] == []


def test_a_corrupt_database_is_reported_plainly(tmp_path: Path, sqlite_url: str) -> None:
    app_dir = app_on(tmp_path, sqlite_url)
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"garbage" * 1000)
    env_url = f"sqlite:///{broken}"
    done = subprocess.run(
        [sys.executable, "-m", "framework", "instances", "list", "--app", str(app_dir)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "FW_DATABASE_URL": env_url, "PYTHONPATH": f"{app_dir.parent}{os.pathsep}{Path.cwd()}"},
    )
    assert done.returncode == 1
    assert "broken.db is not a valid SQLite database" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_one_shot_command_exits_promptly(app_dir: Path, tmp_path: Path) -> None:
    """Each command that opens the store, without a worker; any hang at exit times out."""
    export = tmp_path / "o-1.json"
    commands: list[tuple[str, ...]] = [
        ("start", "orders", "--params", '{"order_id": "o-1", "amount": 2}', "--id", "o-1"),
        ("workflows", "list"),
        ("instances", "list"),
        ("instance", "show", "o-1"),
        ("instance", "pause", "o-1"),
        ("instance", "resume", "o-1"),
        ("event", "send", "o-1", "approval", '{"by": "ada"}'),
        ("instance", "terminate", "o-1"),
        ("instance", "restart", "o-1"),
        ("instance", "terminate", "o-1"),
        ("instance", "export", "o-1", "--output", str(export)),
        ("replay", str(export)),
        ("prune", "--older-than", "0 s"),
        ("migrate",),
        ("doctor",),
    ]
    for command in commands:
        done = fw(app_dir, *command)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert done.stderr == "", (command, done.stderr)
    listed = json.loads(fw(app_dir, "instances", "list", "--json").stdout)
    assert listed["instances"] == []  # pruned


@pytest.mark.timeout(50 * ONE_SHOT_TIMEOUT)  # each run has its own bound, which is the test
def test_a_one_shot_command_exits_promptly_50_times_in_a_row_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    app_dir = app_on(tmp_path, postgres_url)
    for run in range(50):
        try:
            done = fw(app_dir, "instances", "list", "--json")
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {run + 1}: `fw instances list` still running after {ONE_SHOT_TIMEOUT} s")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"instances": [], "next_cursor": None}


PING = """
from framework import workflow, WorkflowContext

@workflow
async def ping(ctx: WorkflowContext[None]) -> str:
    return "pong"
"""


def test_start_without_params_names_the_flag_unless_the_params_may_be_null(
    tmp_path: Path, database_url: str
) -> None:
    """Before, `fw start orders` said `invalid params: params: Input should be a valid
    dictionary or instance of Order`, naming no flag."""
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    app_dir = write_app(
        tmp_path, {"orders_workflow.py": ORDERS, "ping_workflow.py": PING}, settings=settings
    )

    missing = fw(app_dir, "start", "orders")
    pinged = fw(app_dir, "start", "ping", "--id", "p-1", "--json")

    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "error: --params is required: workflow 'orders' takes Order (JSON with order_id, amount)"
    ], missing.stderr
    assert pinged.returncode == 0, pinged.stderr
    assert json.loads(pinged.stdout)["params"] is None
    listed = json.loads(fw(app_dir, "instances", "list", "--json").stdout)
    assert [i["id"] for i in listed["instances"]] == ["p-1"]


def test_an_app_folder_without_fw_toml_names_the_apps_below_it(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "fw.toml").write_text('[app]\nname = "shop"\n')
    (tmp_path / "empty").mkdir()

    above = fw(tmp_path, "start", "onboarding")
    empty = fw(tmp_path / "empty", "start", "onboarding")

    assert above.returncode == 1
    assert above.stderr.splitlines() == [
        f"error: {tmp_path}: no fw.toml here; did you mean --app {tmp_path / 'shop'}?"
    ], above.stderr
    assert empty.returncode == 1
    assert empty.stderr.splitlines() == [
        f"error: {tmp_path / 'empty'}: no fw.toml here; run `fw init {tmp_path / 'empty'}` to "
        "create one"
    ], empty.stderr


def test_start_wait_on_an_existing_id_says_so_at_once_and_not_started(app_dir: Path) -> None:
    """Before, it said `started o-9 (orders); waiting for it to end`, and the params that
    were not used went unmentioned; a timeout with --json printed nothing on stdout."""
    first = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-9", "amount": 1}', "--id", "o-9")
    assert first.returncode == 0, first.stderr

    other = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-9", "amount": 2}',
               "--id", "o-9", "--wait", "--timeout", "1", "--json")
    same = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-9", "amount": 1}',
              "--id", "o-9", "--wait", "--timeout", "1")

    assert other.returncode == 1
    said, *_, error = other.stderr.splitlines()  # a line on no worker may come between
    assert said == ("o-9 existed already: not started again; its stored params differ from "
                    "--params; waiting for it to end")
    assert error.startswith("error: instance 'o-9' is still queued after 1 second: no worker")
    data = json.loads(other.stdout)
    assert (data["id"], data["status"], data["created"], data["params_match"]) == (
        "o-9", "queued", False, False,
    )
    assert (data["params"], data["steps"]) == ({"order_id": "o-9", "amount": 1}, [])
    assert same.returncode == 1
    assert same.stderr.splitlines()[0] == "o-9 existed already: not started again; waiting for it to end"
    assert "started o-9" not in same.stderr + same.stdout

class StderrLines:
    """The stderr lines of a running process, as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stderr is not None
        stream = process.stderr
        self._reader = threading.Thread(target=lambda: [self._lines.put(x) for x in stream])
        self._reader.start()

    def next(self, timeout: float = ONE_SHOT_TIMEOUT) -> str:
        try:
            line = self._lines.get(timeout=timeout).rstrip("\n")
        except queue.Empty:
            raise AssertionError(f"no stderr line in {timeout} s after {self.seen}") from None
        self.seen.append(line)
        return line

    def join(self) -> None:
        """Wait until the stream ended (the process exited)."""
        self._reader.join(timeout=ONE_SHOT_TIMEOUT)


def test_start_wait_prints_the_id_at_once_and_says_no_worker_claimed_it(app_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env.update(PYTHONPATH=f"{app_dir.parent}{os.pathsep}{Path.cwd()}", COLUMNS="40")
    command = [sys.executable, "-m", "framework", "start", "orders", "--params",
               '{"order_id": "o-1", "amount": 3}', "--id", "o-1", "--wait", "--app", str(app_dir)]
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    ) as waiting:
        lines = StderrLines(waiting)
        try:
            assert lines.next() == "started o-1 (orders); waiting for it to end"
            said = lines.next()
            assert said.startswith("o-1: no worker has claimed it yet: it was queued "), said
            assert said.endswith(
                "is a worker running (`fw worker`, `fw dev` or `fw serve --worker`)?"
            ), said
            waiting.send_signal(signal.SIGINT)
            assert waiting.wait(timeout=ONE_SHOT_TIMEOUT) == 130
            assert lines.next() == "stopped waiting for o-1; it goes on (`fw instance show o-1`)"
        finally:
            if waiting.poll() is None:
                waiting.kill()
            waiting.wait()
            lines.join()

    timed_out = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-1", "amount": 3}',
                   "--id", "o-1", "--wait", "--timeout", "1")
    assert timed_out.returncode == 1
    assert timed_out.stderr.startswith(  # o-1 exists since the first run
        "o-1 existed already: not started again; waiting for it to end\n"
    )
    assert "error: instance 'o-1' is still queued after 1 second: no worker has claimed it yet" \
        in timed_out.stderr


def test_start_wait_says_what_the_instance_waits_for(app_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = start_worker(app_dir, log)
    wait_until_started(worker, log)
    try:
        started = time.monotonic()
        done = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-2", "amount": 3}',
                  "--id", "o-2", "--wait", "--timeout", "3")
        took = time.monotonic() - started
    finally:
        assert stop(worker) == 0

    assert done.returncode == 1, done.stderr
    waits = ("it waits for an event of type 'approval' with no timeout; "
             "send one with `fw event send o-2 approval PAYLOAD`")
    assert done.stderr.splitlines() == [
        "started o-2 (orders); waiting for it to end",
        f"o-2: {waits}",
        f"error: instance 'o-2' is still waiting after 3 seconds: {waits}",
    ], done.stderr
    assert took < ONE_SHOT_TIMEOUT

    as_json = fw(app_dir, "start", "orders", "--params", '{"order_id": "o-2", "amount": 3}',
                 "--id", "o-2", "--wait", "--timeout", "1", "--json")
    assert as_json.returncode == 1
    assert as_json.stderr.splitlines()[-1] == (
        f"error: instance 'o-2' is still waiting after 1 second: {waits}"
    )
    data = json.loads(as_json.stdout)  # where it is, as `fw instance show --json` says it
    assert (data["status"], data["created"], data["params_match"]) == ("waiting", False, True)
    assert [w["event_type"] for w in data["waiting_for"]] == ["approval"]
    assert [(s["name"], s["status"]) for s in data["steps"]] == [
        ("charge", "complete"), ("approval", "waiting"),
    ]


@pytest.mark.parametrize("command", [["worker"], ["serve", "--worker"], ["dev"]])
def test_long_running_commands_stop_promptly(
    app_dir: Path, tmp_path: Path, command: list[str]
) -> None:
    """SIGTERM: each stops, closing its store, and exits 0 (`fw serve` and `fw dev` log their
    address; `fw worker` takes no --port)."""
    log = tmp_path / "fw.log"
    if command == ["worker"]:
        worker = start_worker(app_dir, log)
        wait_until_started(worker, log)
        assert stop(worker, timeout=ONE_SHOT_TIMEOUT) == 0, log.read_text()[-2000:]
        return
    with run_fw(command, app_dir, log) as running:
        wait_for_text(log, "started on")
        assert running.stop(timeout=ONE_SHOT_TIMEOUT) == 0, log.read_text()[-2000:]


@pytest.mark.slow
def test_start_with_a_retention_shows_it_and_its_runs(app_dir: Path) -> None:
    order = '{"order_id": "o-7", "amount": 1}'
    started = fw(app_dir, "start", "orders", "--params", order, "--id", "o-7", "--retention", "2 days", "--json")
    assert started.returncode == 0, started.stderr
    assert (json.loads(started.stdout)["retention"], json.loads(started.stdout)["runs"]) == (172800.0, 0)

    human = fw(app_dir, "instance", "show", "o-7")
    assert "0 runs; kept 2 d once ended" in human.stdout

    bad = fw(app_dir, "start", "orders", "--params", order, "--id", "o-8", "--retention", "soon")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "--retention: " in bad.stderr and "'soon'" in bad.stderr
    pruned = fw(app_dir, "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned nothing" in pruned.stdout and "fw.toml sets no retention" in pruned.stdout
    listed = json.loads(fw(app_dir, "instances", "list", "--json").stdout)
    assert [i["id"] for i in listed["instances"]] == ["o-7"]


DECLINES = """
from framework import workflow, WorkflowContext, Retries

def charge() -> int:
    raise ConnectionError("card declined")

@workflow
async def declines(ctx: WorkflowContext[None]) -> int:
    await ctx.step.do("load", lambda: 1)
    return await ctx.step.do("charge", charge, retries=Retries(limit=1, delay=0))
"""


@pytest.mark.slow
def test_start_wait_prints_the_failed_step_of_its_outcome(tmp_path: Path, database_url: str) -> None:
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    app_dir = write_app(tmp_path, {"declines_workflow.py": DECLINES}, settings=settings)
    log = tmp_path / "worker.log"
    worker = start_worker(app_dir, log)
    wait_until_started(worker, log)
    try:
        as_json = fw(app_dir, "start", "declines", "--id", "d-1", "--wait", "--timeout", "30", "--json")
        human = fw(app_dir, "start", "declines", "--id", "d-2", "--wait", "--timeout", "30")
    finally:
        assert stop(worker) == 0

    assert as_json.returncode == 1, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["status"] == "errored"
    failure = data["failure"]
    assert (failure["ok"], failure["status"], failure["failed_step"], failure["attempts"]) == (
        False, "errored", "charge", 2,
    )
    assert failure["error"]["message"] == "card declined"
    assert [(s["name"], s["status"]) for s in data["steps"]] == [
        ("load", "complete"), ("charge", "errored"),
    ]
    assert human.returncode == 1, human.stderr
    assert "failed: errored at step 'charge' after 2 attempt(s)" in " ".join(human.stdout.split())


FAILING = """
import json
from framework import workflow, WorkflowContext

def parse(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LookupError("unreadable order") from exc

@workflow
async def failing(ctx: WorkflowContext[str]) -> object:
    if ctx.params == "step":
        return await ctx.step.do("parse", parse, "{")
    return charge(ctx.params)  # noqa: F821
"""


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_show_of_an_errored_instance_says_where_in_your_code_it_failed(
    tmp_path: Path, database_url: str
) -> None:
    """Before, it printed only `error: NameError: ...`: the file and line were in --json."""
    settings = f'[runtime]\ndatabase = "{database_url}"\n[defaults.retries]\nlimit = 0\n'
    app_dir = write_app(tmp_path, {"failing_workflow.py": FAILING}, settings=settings)
    source = app_dir / "workflows" / "failing_workflow.py"
    log = tmp_path / "worker.log"
    worker = start_worker(app_dir, log)
    wait_until_started(worker, log)
    try:
        for params in ("body", "step"):
            done = fw(app_dir, "start", "failing", "--params", json.dumps(params), "--id", params, "--wait", "--timeout", "30")
            assert done.returncode == 1 and "errored" in done.stdout, done.stderr
    finally:
        assert stop(worker) == 0

    body = fw(app_dir, "instance", "show", "body")
    assert body.returncode == 0, body.stderr
    assert body.stdout.splitlines()[3:] == [
        "error: NameError: name 'charge' is not defined",
        f"failed at: {source}:{line_of(source, 'return charge(')} in failing",
        "    return charge(ctx.params)  # noqa: F821",
    ]
    here = subprocess.run(
        [sys.executable, "-m", "framework", "instance", "show", "body"],
        cwd=app_dir, capture_output=True, text=True, timeout=ONE_SHOT_TIMEOUT,
        env={**os.environ, "PYTHONPATH": f"{app_dir.parent}{os.pathsep}{Path.cwd()}", "FW_DATABASE_URL": database_url},
    )
    assert f"failed at: workflows/failing_workflow.py:{line_of(source, 'return charge(')} in failing" in here.stdout, "relative to the working directory"

    step = fw(app_dir, "instance", "show", "step")
    assert step.returncode == 0, step.stderr
    lines = step.stdout.splitlines()
    assert "error: LookupError in step 'parse': unreadable order" in lines
    assert lines[-3:] == [
        f"failed at: {source}:{line_of(source, 'raise LookupError')} in parse",
        '    raise LookupError("unreadable order") from exc',
        "(--traceback prints the whole traceback)",
    ], "the innermost frame of the app's code, not json's, of the last exception"
    whole = fw(app_dir, "instance", "show", "step", "--traceback")
    assert "json/decoder.py" in whole.stdout and "The above exception was the direct cause" in whole.stdout
    assert whole.stdout.rstrip().endswith("LookupError: unreadable order")
    assert "failed at:" not in whole.stdout


def test_unknown_fw_toml_keys_are_one_warning_line_each_not_a_python_warning(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Before, every command printed Python's `.../framework/runtime/app.py:50: UserWarning:
    ...` and the line of fw's source it came from."""
    settings = f'[runtime]\ndatabase = "{sqlite_url}"\nconcurency = 5\n'
    app_dir = app_on(tmp_path, sqlite_url)
    (app_dir / "fw.toml").write_text((app_dir / "fw.toml").read_text().replace(f'[runtime]\ndatabase = "{sqlite_url}"\n', settings))
    expected = f"{app_dir}/fw.toml:5: warning: unknown key runtime.concurency; did you mean 'concurrency'?"

    listed = fw(app_dir, "instances", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines() == [expected], "once, though fw.toml is read twice"

    log = tmp_path / "worker.log"
    worker = start_worker(app_dir, log)
    wait_until_started(worker, log)
    assert stop(worker) == 0
    printed = log.read_text()
    assert printed.splitlines().count(expected) == 1, printed
    assert "UserWarning" not in printed and "Warning:" not in printed
