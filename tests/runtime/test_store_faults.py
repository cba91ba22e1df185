"""A corrupt, locked or full SQLite database: clear errors naming what failed, nothing
journaled lost, and work resumes once the database is usable again."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from framework import StoreError
from framework.runtime.app import App
from framework.testing import workflow_test_env
from tests.apps import write_app
from tests.runtime.processes import REPO, start_worker, stop, wait_until_started

SIMPLE = """
from framework import workflow, WorkflowContext

@workflow
async def simple(ctx: WorkflowContext[None]) -> str:
    return await ctx.step.do("one", lambda: "done")
"""

ROUNDS = 60
"""Rounds of simultaneous opens (before the fix, several of 60 rounds failed)."""

BULKY = """
import os
from framework import workflow, WorkflowContext

RUNS: list[int] = []

def blob(n: int) -> str:
    RUNS.append(n)
    return "x" * 60_000

@workflow
async def bulky(ctx: WorkflowContext[int]) -> int:
    for n in range(ctx.params):
        await ctx.step.do(f"blob{n}", blob, n)
    return len(RUNS)
"""


async def test_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"simple_workflow.py": SIMPLE})
    database = tmp_path / "broken.db"
    database.write_bytes(b"this is not a database" * 200)
    app = App(root, database=f"sqlite:///{database}")

    with pytest.raises(StoreError, match=r"broken.db is not a valid SQLite database"):
        await app.store()


async def test_a_locked_database_fails_the_write_clearly_and_stores_nothing(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"simple_workflow.py": SIMPLE})
    database = tmp_path / "fw.db"
    app = App(root, database=f"sqlite:///{database}?timeout=0.5")
    handle = app.handle("simple")
    await handle.create(id="before")

    with _exclusive_lock(database), pytest.raises(
        StoreError, match=r"fw.db is locked: another process held it for over 0.5 s"
    ):
        await handle.create(id="during")

    assert [i.id for i in (await handle.list()).instances] == ["before"]
    await app.close()


OPENER = """
import asyncio, sys
from framework.store import open_store

async def open_and_close(url):
    store = open_store(url)
    try:
        await store.open()
    finally:
        await store.close()

print("ready", flush=True)
for line in sys.stdin:
    try:
        asyncio.run(open_and_close(line.strip()))
        print("opened", flush=True)
    except Exception as exc:
        print(f"failed: {exc}", flush=True)
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_processes_opening_a_new_file_together_all_open(tmp_path: Path) -> None:
    """Seven processes open each of many new files at the same moment (the first open of a
    file switches it to WAL, which SQLite refuses at once while another process holds a
    lock on it): every open succeeds."""
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    failures: list[str] = []
    with ExitStack() as stack:
        openers = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", OPENER],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment,
                )
            )
            for _ in range(7)
        ]
        for opener in openers:
            assert opener.stdout is not None and opener.stdout.readline() == "ready\n"
        for round_ in range(ROUNDS):
            url = f"sqlite:///{tmp_path / f'round{round_}.db'}\n"
            for opener in openers:  # as close to the same moment as processes get
                assert opener.stdin is not None
                opener.stdin.write(url)
                opener.stdin.flush()
            for opener in openers:
                assert opener.stdout is not None
                answer = opener.stdout.readline().strip()
                if answer != "opened":
                    failures.append(f"round {round_}: {answer}")
        # Leaving the block closes each opener's input, so it ends, and waits for it.
    assert failures == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fw_workers_starting_together_on_a_new_file_all_start(tmp_path: Path) -> None:
    root = write_app(tmp_path, {"simple_workflow.py": SIMPLE})
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'round{round_}.db'}"
        logs = [tmp_path / f"round{round_}-worker{n}.log" for n in range(5)]
        workers = [start_worker(root, log, {"FW_DATABASE_URL": url}) for log in logs]
        try:
            for worker, log in zip(workers, logs, strict=True):
                wait_until_started(worker, log)
        finally:
            codes = [stop(worker) for worker in workers]
        assert codes == [0] * len(workers), [log.read_text()[-500:] for log in logs]


async def test_a_worker_rides_out_a_lock_and_finishes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_app(
        tmp_path, {"simple_workflow.py": SIMPLE}, '[runtime]\npoll_interval = "100 ms"\n'
    )
    database = tmp_path / "fw.db"
    url = f"sqlite:///{database}?timeout=0.2"
    async with workflow_test_env(root, database=url) as env:
        instance = await env.start("simple")
        await instance.result(timeout=10)
        with caplog.at_level(logging.ERROR, logger="fw.worker"):
            holder = threading.Thread(target=_hold_lock, args=(database, 1.5))
            holder.start()
            await asyncio.sleep(0.1)
            second = await _create_when_possible(env.get("simple"))
            holder.join()
        assert await second.result(timeout=20) == "done"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, so a database on it fills up for real."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("needs mount(8) to make a small tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_names_the_instance_and_step_and_loses_nothing(
    tmp_path: Path, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_app(tmp_path, {"bulky_workflow.py": BULKY}, '[runtime]\nlease = "1 second"\n')
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (3 * 1024 * 1024))
    url = f"sqlite:///{small_disk / 'fw.db'}"
    async with workflow_test_env(root, database=url) as env:
        with caplog.at_level(logging.WARNING, logger="fw.worker"):
            instance = await env.start("bulky", 40, id="bulk-1")
            for _ in range(200):
                if "disk is full" in caplog.text:
                    break
                await asyncio.sleep(0.05)
        journaled_while_full = [s.name for s in await instance.steps()]
        filler.unlink()
        runs = await instance.result(timeout=60)
        steps = await _steps(instance)

    assert "disk is full" in caplog.text
    assert "instance 'bulk-1': could not record the result of step 'blob" in caplog.text
    assert journaled_while_full, "nothing was journaled before the disk filled"
    assert steps[: len(journaled_while_full)] == journaled_while_full
    assert len(steps) == 40
    assert runs <= 41, "a journaled step ran again"


async def _steps(instance: object) -> list[str]:
    from framework import Instance

    assert isinstance(instance, Instance)
    return [s.name for s in await instance.steps()]


async def _create_when_possible(handle: object) -> object:
    from framework import WorkflowHandle

    assert isinstance(handle, WorkflowHandle)
    for _ in range(100):
        try:
            return await handle.create()
        except StoreError:
            await asyncio.sleep(0.1)
    raise AssertionError("the database stayed locked")


class _exclusive_lock:
    def __init__(self, database: Path) -> None:
        self.connection = sqlite3.connect(database, isolation_level=None)

    def __enter__(self) -> None:
        self.connection.execute("BEGIN EXCLUSIVE")

    def __exit__(self, *_: object) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


def _hold_lock(database: Path, seconds: float) -> None:
    import time

    with _exclusive_lock(database):
        time.sleep(seconds)
