"""What a person gets for a mistake or a pasted id, as the real `fw` prints it on both stores:
ids never cut whatever the width, unique prefixes accepted, near misses answered with close
matches, user data printed as written (never read as rich markup or emoji), and every mistake
a one-line error, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from framework.http import create_app
from framework.runtime.app import App
from framework.runtime.worker import Worker
from framework.testing import workflow_test_env
from tests.apps import write_app

ONBOARDING = """
from pydantic import BaseModel
from framework import workflow, WorkflowContext

class Params(BaseModel):
    user: str

@workflow
async def onboarding(ctx: WorkflowContext[Params]) -> str:
    return await ctx.step.do("greet", lambda: "[bold]hi[/bold] :child: " + ctx.params.user)
"""

BROKEN = """
from framework import workflow, WorkflowContext
import a_package_nobody_installed

@workflow
async def broken(ctx: WorkflowContext[None]) -> None:
    return None
"""

LONG_ID = "9c8d84fe37ec41dd8656c0ffee0ddba11c0ffee0ddba11aa"


def fw(app_dir: Path, *args: str, columns: int = 40) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env.update(PYTHONPATH=f"{app_dir.parent}{os.pathsep}{Path.cwd()}", COLUMNS=str(columns))
    return subprocess.run(
        [sys.executable, "-m", "framework", *args, "--app", str(app_dir)],
        capture_output=True, text=True, env=env, timeout=30,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error ``done`` printed: exit 1, one line on stderr, no traceback."""
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def app_dir(tmp_path: Path, database_url: str) -> Path:
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    files = {"onboarding_workflow.py": ONBOARDING, "broken_workflow.py": BROKEN}
    return write_app(tmp_path, files, settings=settings)


async def start(app_dir: Path, *ids: str) -> None:
    """Create instances of onboarding (no worker runs them)."""
    app = App(app_dir)
    try:
        for instance_id in ids:
            await app.handle("onboarding").create({"user": "[red]x"}, id=instance_id)
    finally:
        await app.close()


async def test_ids_are_whole_prefixes_work_and_misses_suggest(app_dir: Path) -> None:
    await start(app_dir, LONG_ID, LONG_ID[:-1] + "b", "pg-2:child:4")

    listed = fw(app_dir, "instances", "list", columns=40)
    assert listed.returncode == 0, listed.stderr
    assert LONG_ID in listed.stdout and "…" not in listed.stdout
    assert "pg-2:child:4" in listed.stdout  # not an emoji

    shown = fw(app_dir, "instance", "show", "pg-2")  # a unique start of the id
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("pg-2:child:4 (onboarding) queued")

    paused = fw(app_dir, "instance", "pause", "pg")
    assert paused.stdout.strip() == "paused pg-2:child:4: now paused"

    ambiguous = one_line_error(fw(app_dir, "instance", "show", LONG_ID[:10]))
    assert LONG_ID in ambiguous and LONG_ID[:-1] + "b" in ambiguous
    assert "give more of the id" in ambiguous

    missed = one_line_error(fw(app_dir, "event", "send", "pg-2:child:5", "approval"))
    assert missed == "error: no instance with id 'pg-2:child:5'; did you mean 'pg-2:child:4'?"


async def test_user_data_is_printed_as_written(app_dir: Path) -> None:
    async with workflow_test_env(app_dir, database=App(app_dir).database_url) as env:
        await env.run("onboarding", {"user": "[red]x"}, id="pg-9:child:1")
    shown = fw(app_dir, "instance", "show", "pg-9:child:1", columns=200)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("pg-9:child:1 (onboarding) complete")
    assert 'output: "[bold]hi[/bold] :child: [red]x"' in shown.stdout


def test_bad_filters_are_errors_with_close_matches(app_dir: Path) -> None:
    status = one_line_error(fw(app_dir, "instances", "list", "--status", "wating"))
    assert status.startswith("error: unknown status 'wating'; did you mean 'waiting'? use one of")
    workflow = one_line_error(fw(app_dir, "instances", "list", "--workflow", "onbording"))
    assert workflow == "error: unknown workflow 'onbording'; did you mean 'onboarding'?"
    none = fw(app_dir, "instances", "list", "--workflow", "onboarding", "--status", "errored")
    assert (none.returncode, none.stdout) == (0, "no instances\n")


def test_a_workflow_that_cannot_import_is_one_line_naming_file_and_line(app_dir: Path) -> None:
    said = one_line_error(fw(app_dir, "start", "broken"))
    assert said == (
        "error: workflows/broken_workflow.py:3: workflow 'broken' cannot be imported: "
        "ModuleNotFoundError: No module named 'a_package_nobody_installed'"
    )


async def test_the_api_answers_an_import_error_with_file_line_and_cause(app_dir: Path) -> None:
    app = App(app_dir)
    transport = httpx.ASGITransport(app=create_app(app, token=""))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.post("/api/workflows/broken/instances", json={"params": None})
    finally:
        await app.close()
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "workflow_import_error",
        "message": "workflows/broken_workflow.py:3: workflow 'broken' cannot be imported: "
        "ModuleNotFoundError: No module named 'a_package_nobody_installed'",
        "file": "workflows/broken_workflow.py",
        "line": 3,
        "cause": "ModuleNotFoundError: No module named 'a_package_nobody_installed'",
    }


def test_workflows_list_before_codegen_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "fw.toml").write_text('[app]\nname = "fresh"\n')
    said = one_line_error(fw(root, "workflows", "list"))
    assert said == f"error: {root}: no generated package; run `fw codegen --app {root}`"


@pytest.mark.slow
def test_a_bad_workflow_setting_in_fw_toml_is_one_line_naming_its_line_and_key(
    tmp_path: Path,
) -> None:
    root = write_app(tmp_path, {"onboarding_workflow.py": ONBOARDING})
    toml = root / "fw.toml"
    toml.write_text(
        toml.read_text().replace(
            'name = "onboarding"', 'name = "onboarding"\nretries = { limit = "lots" }'
        )
    )
    line = toml.read_text().splitlines().index('retries = { limit = "lots" }') + 1

    error = one_line_error(fw(root, "start", "onboarding", "--params", '{"user": "a"}'))

    assert f"fw.toml:{line}: workflows[onboarding].retries.limit: " in error
    assert "valid integer" in error


def test_counts_and_ports_out_of_range_are_usage_errors(app_dir: Path) -> None:
    """Before, `fw worker --concurrency 0` ran a worker of concurrency 100 (and -1 one that
    never claimed anything), `Worker(app, concurrency=0)` did the same, and `fw serve --port
    99999` ended with uvicorn's traceback."""
    cases = {
        ("worker", "--concurrency", "0"): "Invalid value for '--concurrency'",
        ("worker", "--metrics-port", "70000"): "Invalid value for '--metrics-port'",
        ("serve", "--port", "99999"): "Invalid value for '--port'",
        ("dev", "--port", "-1"): "Invalid value for '--port'",
    }
    for args, message in cases.items():
        done = fw(app_dir, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    for concurrency in (0, -1):
        with pytest.raises(ValueError, match=f"concurrency {concurrency} is not a number"):
            Worker(app_dir, concurrency=concurrency)


LONG = """
from framework import workflow, WorkflowContext

def tick(n: int) -> int:
    return n

@workflow
async def long(ctx: WorkflowContext[int]) -> int:
    for n in range(ctx.params):
        await ctx.step.do("tick", tick, n)
    return ctx.params
"""


async def test_instance_show_prints_the_latest_steps_of_a_long_instance(
    tmp_path: Path, database_url: str
) -> None:
    """Before, `fw instance show` printed every step: 20,000 took 8 s of table."""
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    app_dir = write_app(tmp_path, {"long_workflow.py": LONG}, settings=settings)
    async with workflow_test_env(app_dir, database=database_url) as env:
        assert await env.run("long", 130, id="long-1") == 130

    shown = fw(app_dir, "instance", "show", "long-1", columns=200)
    as_json = fw(app_dir, "instance", "show", "long-1", "--json")

    assert shown.returncode == as_json.returncode == 0, (shown.stderr, as_json.stderr)
    assert "the 30 earlier steps are not shown, only the latest 100; --json" in shown.stdout
    assert "tick #130" in shown.stdout and "tick #31 " in shown.stdout
    assert "tick #30 " not in shown.stdout
    assert len(json.loads(as_json.stdout)["steps"]) == 130


LIMITED = """
from pydantic import BaseModel
from framework import workflow, WorkflowContext

class Params(BaseModel):
    customer: str

@workflow(concurrency=1, concurrency_key="customer")
async def limited_for_each_customer_of_the_shop(ctx: WorkflowContext[Params]) -> None:
    return None
"""


@pytest.mark.parametrize("columns", [40, 80, 120])
async def test_workflows_list_cuts_no_cell_whatever_the_width(
    tmp_path: Path, database_url: str, columns: int
) -> None:
    settings = f'[runtime]\ndatabase = "{database_url}"\n'
    files = {"limited_for_each_customer_of_the_shop_workflow.py": LIMITED}
    root = write_app(tmp_path, files, settings=settings)
    app = App(root)
    try:
        handle = app.handle("limited-for-each-customer-of-the-shop")
        made = [await handle.create({"customer": f"c-{n}"}) for n in range(3)]
        await made[0].pause()
        await made[1].terminate()
    finally:
        await app.close()

    listed = fw(root, "workflows", "list", columns=columns)

    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len({len(line) for line in lines}) == 1, listed.stdout  # every line whole, to its rule
    assert lines[0].endswith("┓") and lines[-1].endswith("┘"), listed.stdout
    words = listed.stdout.split()
    for word in ("LIMITED_FOR_EACH_CUSTOMER_OF_THE_SHOP_WORKFLOW", "terminated", "customer,"):
        assert word in words, listed.stdout
