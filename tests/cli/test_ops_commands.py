"""``fw migrate`` and ``fw doctor``, run as the real command line on both stores."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from framework.store import open_store
from framework.store.base import NewInstance
from framework.store.migrations import latest_version
from tests.apps import write_app

REPO = Path(__file__).resolve().parents[2]


def fw(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    environment.update(env or {}, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "framework", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def make_app(parent: Path, database: str | None = None) -> Path:
    root = parent / "opsapp"
    (root / "workflows").mkdir(parents=True)
    runtime = f'\n[runtime]\ndatabase = "{database}"\n' if database else ""
    (root / "fw.toml").write_text(f'[app]\nname = "opsapp"\n{runtime}')
    return root


def doctor_json(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = fw("doctor", "--json", *args, cwd=cwd, env=env)
    return result.returncode, json.loads(result.stdout)


def test_migrate_and_doctor_on_the_apps_sqlite_file(tmp_path: Path) -> None:
    root = make_app(tmp_path)
    before = fw("doctor", "--app", str(root), cwd=tmp_path)
    assert before.returncode == 1
    assert "does not exist yet" in before.stdout

    migrated = fw("migrate", "--app", str(root), cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    latest = latest_version("sqlite")
    assert f"migrated the schema from version 0 to {latest}" in migrated.stdout
    again = fw("migrate", "--app", str(root), "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["version"] == latest
    assert json.loads(again.stdout)["from_version"] == latest

    healthy = fw("doctor", cwd=root)  # the app is found from the working directory
    assert healthy.returncode == 0, healthy.stdout
    assert f"version {latest} (current)" in healthy.stdout
    assert healthy.stdout.rstrip().endswith("ok")
    assert doctor_json(cwd=root)[1]["ids_indexed"] is True  # FTS5 trigram in this SQLite


def test_doctor_reports_lag_and_workers(tmp_path: Path, database_url: str) -> None:
    root = make_app(tmp_path, database_url)
    now = time.time()

    async def fill() -> None:
        store = open_store(database_url)
        await store.open()
        await store.create_instances(
            [NewInstance(f"old{n}", "wf", "{}", now - 300) for n in range(3)]
            + [
                NewInstance("held", "wf", "{}", now - 400),
                NewInstance("dead", "wf", "{}", now - 500),
            ]
        )
        await store.claim("host:1:dead", 1, now - 500, now - 100)  # its lease ran out
        await store.claim("host:2:alive", 1, now - 400, now + 600)
        await store.close()

    asyncio.run(fill())
    code, report = doctor_json("--app", str(root), cwd=tmp_path)
    assert code == 0, report
    assert report["schema_current"] is True
    assert report["runnable"] == 4  # three due and queued, one with an expired lease
    assert report["expired_leases"] == 1
    assert 299 < report["oldest_runnable_age"] < 400  # the expired lease has been due 100 s
    assert report["workers"] == []  # no worker registered: these are bare lease owners
    holders = {w["id"]: w for w in report["lease_holders"]}
    assert holders["host:2:alive"]["alive"] is True and holders["host:2:alive"]["held"] == 1
    assert holders["host:1:dead"]["alive"] is False
    assert any("wait unclaimed" in w for w in report["warnings"])
    assert any("expired leases" in w for w in report["warnings"])
    assert report["counts"] == {"queued": 3, "running": 2}

    human = fw("doctor", "--app", str(root), cwd=tmp_path)
    assert "4 runnable unclaimed" in human.stdout
    assert "host:2:alive: 1 held, lease held (not registered)" in human.stdout
    assert "0 alive" in human.stdout


def test_doctor_warns_when_instances_wait_and_no_worker_is_alive(
    tmp_path: Path, database_url: str
) -> None:
    """Before, it printed `ok` under `lag 1 runnable unclaimed` and `workers 0 alive` until
    the instance had waited a minute."""
    root = make_app(tmp_path, database_url)

    async def fill() -> None:
        store = open_store(database_url)
        await store.open()
        await store.create_instances([NewInstance("fresh", "wf", "{}", time.time() - 5)])
        await store.close()

    asyncio.run(fill())
    human = fw("doctor", "--app", str(root), cwd=tmp_path)
    code, report = doctor_json(cwd=root)

    assert human.returncode == 0, human.stdout
    assert "1 runnable unclaimed" in human.stdout and "0 alive" in human.stdout
    assert human.stdout.rstrip().splitlines()[-1] == (
        "warning: 1 runnable instance waits and no worker is alive: start one with "
        f"`fw worker --app {root}`"
    ), human.stdout
    assert code == 0
    assert report["warnings"] == [
        "1 runnable instance waits and no worker is alive: start one with `fw worker`"
    ]


def test_doctor_says_nothing_of_runnable_instances_a_live_worker_will_claim() -> None:
    from framework.cli.ops_commands import _findings
    from framework.store.diagnostics import Diagnosis, RegisteredWorker

    found = Diagnosis(database="sqlite:///x.db", dialect="sqlite", reachable=True)
    found.runnable, found.oldest_runnable_age = 2, 5.0
    assert _findings(found)[1] == [
        "2 runnable instances wait and no worker is alive: start one with `fw worker`"
    ]
    found.workers = [RegisteredWorker("h:1:a", "h", 1, "alive", 0, 3.0, "v")]
    assert _findings(found) == ([], [])

LIMITED = """
    from framework import workflow, WorkflowContext

    @workflow(concurrency=1{key})
    async def {name}(ctx: WorkflowContext[dict[str, str]]) -> None:
        return None
"""


def test_doctor_counts_instances_waiting_for_a_concurrency_slot_apart_from_lag(
    tmp_path: Path, database_url: str
) -> None:
    root = write_app(
        tmp_path,
        {
            "single_workflow.py": LIMITED.format(key="", name="single"),
            "per_customer_workflow.py": LIMITED.format(
                key=', concurrency_key="customer"', name="per_customer"
            ),
        },
        f'[runtime]\ndatabase = "{database_url}"\n',
    )
    now = time.time()

    def new(id: str, workflow: str, age: float, key: str | None = None) -> NewInstance:
        return NewInstance(id, workflow, "{}", now - age, concurrency_key=key)

    async def fill() -> None:
        store = open_store(database_url)
        await store.open()
        # Each limit's one slot taken (per_customer: customer a's), by a live worker.
        await store.create_instances(
            [new("s-run", "single", 1000), new("a-run", "per-customer", 900, "a")]
        )
        assert len(await store.claim("host:1:alive", 2, now - 800, now + 600)) == 2
        await store.create_instances(
            [new(f"s{n}", "single", 300) for n in range(3)]  # single's slot is taken
            + [new(f"a{n}", "per-customer", 300, "a") for n in range(2)]  # a's too
            + [new(f"b{n}", "per-customer", 200 - n, "b") for n in range(2)]  # one runs
            + [new("free", "unlimited", 100)]  # no limit: a worker could take it
        )
        await store.close()

    asyncio.run(fill())
    code, report = doctor_json("--app", str(root), cwd=tmp_path)
    assert code == 0, report
    assert report["runnable"] == 2, report  # b's oldest and the unlimited one
    assert report["waiting_for_slots"] == 6  # single's 3, a's 2, b's second
    assert 199 < report["oldest_runnable_age"] < 290  # b's oldest, not single's (300 s)
    lag = [w for w in report["warnings"] if "wait unclaimed" in w]
    assert len(lag) == 1 and lag[0].startswith("2 runnable instances wait unclaimed, the oldest for 20")
    human = fw("doctor", "--app", str(root), cwd=tmp_path)
    assert "2 runnable unclaimed" in human.stdout
    assert "6 waiting for a concurrency slot" in human.stdout

    entrypoints = root / "_generated" / "entrypoints.py"
    entrypoints.write_text("raise RuntimeError('edited by hand')\n")  # the store is still read
    code, report = doctor_json("--app", str(root), cwd=tmp_path)
    assert code == 0, report
    assert report["runnable"] == 8 and report["waiting_for_slots"] == 0
    assert report["warnings"][0].startswith(
        "the app's workflows could not be loaded (RuntimeError: edited by hand)"
    )


def test_postgres_through_the_environment_outside_an_app(tmp_path: Path, postgres_url: str) -> None:
    env = {"FW_DATABASE_URL": postgres_url}
    code, report = doctor_json(cwd=tmp_path, env=env)
    assert code == 1
    assert report["reachable"] is True and report["schema_version"] == 0
    assert "run `fw migrate`" in report["problems"][0]
    migrated = fw("migrate", cwd=tmp_path, env=env)
    assert migrated.returncode == 0, migrated.stderr
    code, report = doctor_json(cwd=tmp_path, env=env)
    assert code == 0, report
    assert report["schema_version"] == latest_version("postgres")
    assert report["connections"] >= 1 and report["max_connections"] > 0
    assert report["ids_indexed"] is True  # pg_trgm on this server


def test_an_unreachable_postgres_is_reported_not_raised(tmp_path: Path) -> None:
    env = {"FW_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2"}
    result = fw("doctor", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "the server is unreachable" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    failed = fw("migrate", cwd=tmp_path, env=env)
    assert failed.returncode == 1
    assert "the server is unreachable" in failed.stderr
    assert "Traceback" not in failed.stderr


@pytest.mark.parametrize("command", ["migrate", "doctor"])
def test_without_an_app_or_a_database_url_the_error_says_what_to_do(
    tmp_path: Path, command: str
) -> None:
    result = fw(command, cwd=tmp_path)
    assert result.returncode == 1
    assert "fw.toml" in result.stderr and "--app" in result.stderr


def test_doctor_warns_of_a_stale_worker() -> None:
    from framework.cli.ops_commands import _findings
    from framework.store.diagnostics import Diagnosis, RegisteredWorker

    found = Diagnosis(database="sqlite:///x.db", dialect="sqlite", reachable=True)
    found.workers = [
        RegisteredWorker("h:1:a", "h", 1, "alive", 0, 3.0, "v"),
        RegisteredWorker("h:2:b", "h", 2, "stale", 4, 95.0, "v"),
    ]
    problems, warnings = _findings(found)
    assert problems == []
    assert warnings == [
        "worker h:2:b (pid 2 on h) is stale: it holds its liveness lock but last beat 95 s ago "
        "(stopped or starved of CPU); its instances stay with it"
    ]
