"""Scale-out on PostgreSQL: worker processes share the work, survive SIGKILL and SIGTERM of
their peers, and never run one instance at once or a journaled step twice.

Every step appends ``start`` and ``end`` lines (instance, step, pid, time, token) to a log.
After the run, for every instance and step:

- the journaled output is the token of the last execution: a journaled step never ran again;
- any earlier execution began in the worker killed with SIGKILL (its in-flight step, at most
  one per instance), never in a worker that was alive or stopped cleanly;
- executions by different workers never overlap in time (the killed worker's in-flight
  step counts as running until the kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from framework.runtime.app import App
from tests.apps import write_app
from tests.conftest import PG_SKIP_REASON, postgres_server_url
from tests.runtime.processes import worker_command

REPO = Path(__file__).resolve().parents[2]
FIVE_STEPS = """
import asyncio, os, time
from framework import workflow, WorkflowContext

def _log(line: str) -> None:
    with open(os.environ["FW_SCALE_LOG"], "a") as log:
        log.write(line + "\\n")

async def work(instance: str, step: str) -> str:
    token = f"{os.getpid()}-{time.time_ns()}"
    _log(f"start {instance} {step} {os.getpid()} {time.time()} {token}")
    await asyncio.sleep(0.005)
    _log(f"end {instance} {step} {os.getpid()} {time.time()} {token}")
    return token

@workflow
async def five(ctx: WorkflowContext[None]) -> list[str]:
    return [await ctx.step.do(f"s{n}", work, ctx.instance_id, f"s{n}") for n in range(5)]
"""
NETNS_LOCK = "/tmp/fw-netns.lock"
"""Held while a test uses its network namespaces (their addresses are fixed)."""
# A lease short enough to keep the tests quick, long enough that a live worker starved of CPU
# by a busy machine (the whole suite, other jobs) still renews it in time.
SETTINGS = '[runtime]\nlease = "5 seconds"\npoll_interval = "500 ms"\n'
STEPS = [f"s{n}" for n in range(5)]

pytestmark = [
    pytest.mark.skipif(postgres_server_url() is None, reason=PG_SKIP_REASON),
    pytest.mark.slow,
]


@dataclass
class Execution:
    pid: int
    start: float
    token: str
    end: float | None = None


@dataclass
class Trace:
    executions: dict[tuple[str, str], list[Execution]] = field(
        default_factory=lambda: defaultdict(list)
    )

    @classmethod
    def read(cls, log: Path) -> Trace:
        trace = cls()
        started: dict[str, Execution] = {}
        for line in log.read_text().splitlines():
            kind, instance, step, pid, at, token = line.split()
            if kind == "start":
                execution = Execution(int(pid), float(at), token)
                started[token] = execution
                trace.executions[(instance, step)].append(execution)
            else:
                started[token].end = float(at)
        return trace

    def check(self, journal: dict[str, list[str]], killed: dict[int, float]) -> int:
        """Assert the module's three rules; return how many steps ran twice."""
        repeats = 0
        for instance, outputs in journal.items():
            assert len(outputs) == len(STEPS), instance
            spans: list[tuple[float, float, int]] = []
            reruns_by_pid: dict[int, int] = defaultdict(int)
            for step, token in zip(STEPS, outputs, strict=True):
                runs = self.executions[(instance, step)]
                assert runs, f"{instance} {step} never ran"
                assert runs[-1].token == token, f"{instance} {step} ran after it was journaled"
                for earlier in runs[:-1]:
                    assert earlier.pid in killed, (
                        f"{instance} {step} ran twice, first in {earlier.pid}, which was not killed"
                    )
                    reruns_by_pid[earlier.pid] += 1
                    repeats += 1
                for run in runs:
                    end = run.end if run.end is not None else killed.get(run.pid)
                    assert end is not None, f"{instance} {step}: an execution never ended"
                    spans.append((run.start, end, run.pid))
            assert all(n <= 1 for n in reruns_by_pid.values()), (instance, dict(reruns_by_pid))
            spans.sort()
            for (_, end, pid), (start, _, other) in itertools.pairwise(spans):
                assert start >= end or pid == other, f"{instance} ran in {pid} and {other} at once"
        return repeats


def worker(
    app_dir: Path, log: Path, env: dict[str, str], concurrency: int, netns: str | None = None
) -> subprocess.Popen[bytes]:
    command = worker_command(app_dir, concurrency)
    if netns is not None:
        command = ["ip", "netns", "exec", netns, *command]
    environment = {**os.environ, **env, "PYTHONPATH": f"{app_dir.parent}{os.pathsep}{REPO}"}
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)


def stop_all(processes: list[subprocess.Popen[bytes]], timeout: float = 60) -> list[int]:
    """SIGTERM each and wait; SIGKILL any still running after ``timeout`` (code -9)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


def count_lines(log: Path, prefix: str) -> int:
    if not log.exists():
        return 0
    with log.open("rb") as f:
        return sum(1 for line in f if line.startswith(prefix.encode()))


def all_ran_steps(log: Path, pids: list[int], steps: int = 5) -> bool:
    """Whether each worker ``pid`` has finished at least ``steps`` steps."""
    ended: dict[str, int] = defaultdict(int)
    with log.open() as f:
        for line in f:
            if line.startswith("end "):
                ended[line.split()[3]] += 1
    return all(ended[str(pid)] >= steps for pid in pids)


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def statuses(url: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(url) as c:
        cur = await c.execute("SELECT status, count(*) FROM instances GROUP BY status")
        return {status: count for status, count in await cur.fetchall()}


async def journal_of(url: str) -> dict[str, list[str]]:
    async with await psycopg.AsyncConnection.connect(url) as c:
        cur = await c.execute(
            "SELECT instance_id, output FROM steps WHERE kind = 'do' ORDER BY instance_id, seq"
        )
        journal: dict[str, list[str]] = defaultdict(list)
        for instance_id, output in await cur.fetchall():
            journal[instance_id].append(output.strip('"'))
        return journal


def app_on(root: Path, url: str) -> App:
    os.environ["FW_DATABASE_URL"] = url
    try:
        app = App(root)
    finally:
        del os.environ["FW_DATABASE_URL"]
    app.install()
    return app


@pytest.mark.timeout(240)
async def test_four_workers_share_2000_instances_through_a_sigkill_and_a_sigterm(
    tmp_path: Path,
    postgres_url: str,
) -> None:
    total = 2000
    root = write_app(tmp_path, {"five_workflow.py": FIVE_STEPS}, SETTINGS)
    log, workers_log = tmp_path / "steps.log", tmp_path / "workers.log"
    env = {"FW_SCALE_LOG": str(log), "FW_DATABASE_URL": postgres_url}
    app = app_on(root, postgres_url)
    handle = app.handle("five")
    for start in range(0, total, 500):
        await handle.create_batch(
            [{"params": None, "id": f"i{n:05d}"} for n in range(start, start + 500)]
        )
    await app.close()

    started = time.monotonic()
    workers = [worker(root, workers_log, env, concurrency=50) for _ in range(4)]
    killed: dict[int, float] = {}
    try:
        await wait_for(lambda: count_lines(log, "end") >= total * 5 // 4, 120, "a quarter")
        workers[0].send_signal(signal.SIGKILL)
        killed[workers[0].pid] = time.time()
        workers[0].wait(timeout=10)
        await wait_for(lambda: count_lines(log, "end") >= total * 5 // 2, 120, "a half")
        workers[1].send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(workers[1].wait, 30) == 0
        await wait_for_all_complete(postgres_url, total, 150)
    finally:
        codes = stop_all(workers)[2:]
    elapsed = time.monotonic() - started
    output = workers_log.read_text()
    assert codes == [0, 0], output[-3000:]
    assert "Traceback" not in output, output[-3000:]

    trace = Trace.read(log)
    journal = await journal_of(postgres_url)
    assert len(journal) == total
    repeats = trace.check(journal, killed)
    pids = {run.pid for runs in trace.executions.values() for run in runs}
    assert {w.pid for w in workers} <= pids, "a worker took no part"
    print(
        f"{total} instances x 5 steps on 4 workers in {elapsed:.1f} s; "
        f"{repeats} in-flight steps of the killed worker ran again"
    )


async def wait_for_all_complete(url: str, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (counts := await statuses(url)).get("complete", 0) < total:
        assert not counts.get("errored"), counts
        if time.monotonic() > deadline:
            raise AssertionError(f"not all instances completed: {counts}; {await unended(url)}")
        await asyncio.sleep(0.2)


async def unended(url: str) -> list[tuple[object, ...]]:
    """The instances not complete, with their lease and journal, for a failure's message."""
    async with await psycopg.AsyncConnection.connect(url) as c:
        cur = await c.execute(
            "SELECT i.id, i.status, i.lease_owner, i.wake_at - extract(epoch FROM now()), "
            "i.crash_count, (SELECT count(*) FROM steps s WHERE s.instance_id = i.id) "
            "FROM instances i WHERE i.status <> 'complete' ORDER BY i.id LIMIT 10"
        )
        return list(await cur.fetchall())


# Several machines: each in its own network namespace, reaching the server over a veth link.


@contextlib.contextmanager
def machines(count: int) -> Iterator[list[tuple[str, str]]]:
    """``count`` network namespaces, each linked to the host by a veth pair; yields
    (namespace, host address the server listens on) per machine."""
    if os.geteuid() != 0 or subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        pytest.skip("network namespaces need root and iproute2")
    # The addresses are fixed: one test at a time on this machine (several suites may run).
    with open(NETNS_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _namespaces(count) as made:
            yield made


@contextlib.contextmanager
def _namespaces(count: int) -> Iterator[list[tuple[str, str]]]:
    prefix = f"fw{os.getpid() % 10000}"
    made: list[tuple[str, str]] = []

    def ip(*args: str, netns: str | None = None) -> None:
        command = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
        subprocess.run(command, check=True, capture_output=True)

    try:
        for n in range(count):
            name, host, inside = f"{prefix}m{n}", f"10.231.{n}.1", f"10.231.{n}.2"
            ip("netns", "add", name)
            made.append((name, host))
            ip("link", "add", f"{name}h", "type", "veth", "peer", "name", f"{name}n")
            ip("link", "set", f"{name}n", "netns", name)
            ip("addr", "add", f"{host}/30", "dev", f"{name}h")
            ip("link", "set", f"{name}h", "up")
            ip("addr", "add", f"{inside}/30", "dev", f"{name}n", netns=name)
            ip("link", "set", f"{name}n", "up", netns=name)
            ip("link", "set", "lo", "up", netns=name)
    except subprocess.CalledProcessError as exc:
        for name, _ in made:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        pytest.skip(f"cannot create network namespaces here: {exc.stderr!r}")
    try:
        yield made
    finally:
        for name, _ in made:
            # A process left inside would keep the namespace (and its veth) alive.
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            # Deleting a namespace removes its end of the veth, and so the pair.
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


@pytest.mark.timeout(240)
async def test_workers_on_separate_machines_share_the_work(tmp_path: Path) -> None:
    from tests.store.private_postgres import private_postgres

    total = 600
    with machines(2) as hosts, private_postgres(listen=[host for _, host in hosts]) as server:
        root = write_app(tmp_path, {"five_workflow.py": FIVE_STEPS}, SETTINGS)
        log, workers_log = tmp_path / "steps.log", tmp_path / "workers.log"
        app = app_on(root, server.url)
        await app.handle("five").create_batch(
            [{"params": None, "id": f"m{n:04d}"} for n in range(total)]
        )
        await app.close()
        workers = []
        for netns, host in hosts:
            url = f"postgresql://postgres@{host}:{server.port}/postgres?pool_size=4"
            env = {"FW_SCALE_LOG": str(log), "FW_DATABASE_URL": url}
            workers += [worker(root, workers_log, env, 30, netns=netns) for _ in range(2)]
        try:
            await wait_for_all_complete(server.url, total, 150)
            async with await psycopg.AsyncConnection.connect(server.url) as c:
                cur = await c.execute(
                    "SELECT DISTINCT host(client_addr) FROM pg_stat_activity "
                    "WHERE client_addr IS NOT NULL AND application_name = 'fw'"
                )
                clients = {row[0] for row in await cur.fetchall()}
        finally:
            codes = stop_all(workers)
        output = workers_log.read_text()
        assert codes == [0, 0, 0, 0], output[-3000:]
        journal = await journal_of(server.url)
    trace = Trace.read(log)
    assert trace.check(journal, killed={}) == 0
    pids = {run.pid for runs in trace.executions.values() for run in runs}
    assert len(pids) == 4, "a worker took no part"
    assert clients == {"10.231.0.2", "10.231.1.2"}, clients  # one address per machine


@pytest.mark.timeout(240)
async def test_a_machine_cut_off_the_network_loses_its_instances_to_the_others(
    tmp_path: Path,
) -> None:
    """A partition: one machine's workers keep running but cannot reach the database. Their
    leases expire, the other machine takes over, and when the network heals the cut-off
    workers' late writes are refused by the lease fence: nothing is journaled twice."""
    from tests.store.private_postgres import private_postgres

    total = 600
    with machines(2) as hosts, private_postgres(listen=[host for _, host in hosts]) as server:
        root = write_app(tmp_path, {"five_workflow.py": FIVE_STEPS}, SETTINGS)
        log, workers_log = tmp_path / "steps.log", tmp_path / "workers.log"
        app = app_on(root, server.url)
        await app.handle("five").create_batch(
            [{"params": None, "id": f"p{n:04d}"} for n in range(total)]
        )
        await app.close()
        workers: list[subprocess.Popen[bytes]] = []
        for netns, host in hosts:
            url = (
                f"postgresql://postgres@{host}:{server.port}/postgres?pool_size=4"
                "&tcp_user_timeout=2000&keepalives_idle=2&keepalives_interval=1"
            )
            env = {"FW_SCALE_LOG": str(log), "FW_DATABASE_URL": url}
            workers += [worker(root, workers_log, env, 30, netns=netns) for _ in range(2)]
        cut_off: dict[int, float] = {}
        link = f"{hosts[0][0]}h"
        try:
            await wait_for(lambda: count_lines(log, "end") >= total * 5 // 4, 120, "a quarter")
            # On a busy machine a worker may start late: cut only once both run instances.
            cut_pids = [w.pid for w in workers[:2]]
            await wait_for(lambda: all_ran_steps(log, cut_pids), 120, "the cut-off machine")
            subprocess.run(["ip", "link", "set", link, "down"], check=True)
            cut_off = {w.pid: time.time() for w in workers[:2]}
            await asyncio.sleep(10)  # well past the 5 s lease
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
            await wait_for_all_complete(server.url, total, 150)
        finally:
            subprocess.run(["ip", "link", "set", link, "up"], capture_output=True)
            codes = stop_all(workers)
            print(workers_log.read_text()[-8000:])  # shown if the test fails
        output = workers_log.read_text()
        assert codes == [0, 0, 0, 0], output[-3000:]
        journal = await journal_of(server.url)
    trace = Trace.read(log)
    repeats = trace.check(journal, cut_off)
    assert repeats > 0, "the cut-off machine held nothing: the partition tested nothing"
    assert "no longer held" in output or "lease lost" in output, output[-3000:]
    print(f"partition: {repeats} steps of the cut-off machine ran again elsewhere")
