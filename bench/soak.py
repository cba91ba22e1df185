"""A soak: worker processes SIGKILLed at random under load lose nothing and repeat nothing.

    .venv/bin/python -m bench.soak                                   # both stores
    .venv/bin/python -m bench.soak --store sqlite --seconds 30 --instances 500

On each store, ``--instances`` instances of a workflow of five steps, a durable sleep and an
event are created as one backlog, then run by ``--workers`` ``fw worker`` processes (lease
5 s). Until every instance has ended, or for ``--seconds`` at most, the driver SIGKILLs a
random worker every 2 to 5 seconds and starts a new one in its place. It sends each instance
its event: half of them, picked at random, before the workers start (buffered until the
instance waits), the others as soon as the instance starts the step before its wait.

On PostgreSQL the database is a private server (``initdb`` into a temporary folder, as
``tests/store/private_postgres.py`` does; the machine's shared server is never touched). When
40 % of the instances have ended, the driver stops that server, kills a worker (so that its
replacement starts while the database is down), and starts the server again at most 2.5 s
later. After the kills, the instances drain and the workers stop with SIGTERM.

Step bodies count their own executions outside fw's store: each appends a line (instance, step,
a token naming its process, the time) to a ledger file with one ``O_APPEND`` write. The check
reads only the ledger, the instances' final statuses and their outputs (which carry each step's
token and the event's payload), and counts:

- lost: an instance that did not complete, or whose output misses a step, a token the ledger
  never saw, or the payload it was sent;
- duplicated: a step body run again without a kill to explain it: after its result was
  journaled (the ledger's last run of a step must be the one whose token the workflow got), by
  a process never killed, or more than once for one instance by one killed process;
- re-run: a step body run again because the process running it was killed mid-step (at most
  one per instance per kill: the step in flight);
- early wakes: a step after the sleep that ran before the sleep was due.

It prints those counts with the number of kills, instances per second over the whole run
(from the workers' start to the last instance's end) and the time from the last fault to the
end. It exits 1, keeping its folder (ledger, worker logs), when anything was lost, duplicated
or woke early, or a worker exited on its own, logged an error or did not stop cleanly. It is
not a test (a minute or more per store); ``python -m bench`` leaves it out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.apps import write_app
from tests.runtime.processes import kill, start_worker, stop, wait_until_started

STEPS = ("one", "two", "three", "four", "five")
NAP = 1.0
KILL_EVERY = (2.0, 5.0)
RESTART_DATABASE_AT = 0.4
OUTAGE_AT_MOST = 2.5
DRAIN_TIMEOUT = 600.0

WORKFLOW = f"""
import asyncio, os, random, time, uuid
from framework import workflow, WorkflowContext

def record(instance: str, step: str) -> str:
    token = f"{{os.getpid()}}-{{uuid.uuid4().hex[:12]}}"
    line = f"{{instance}} {{step}} {{token}} {{time.time():.6f}}\\n".encode()
    ledger = os.open(os.environ["FW_SOAK_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(ledger, line)
    finally:
        os.close(ledger)
    return token

async def effect(instance: str, step: str) -> str:
    token = record(instance, step)
    await asyncio.sleep(random.uniform(0.02, 0.2))  # in flight for a while: kills land here
    return token

@workflow
async def soak(ctx: WorkflowContext[None]) -> dict[str, object]:
    i = ctx.instance_id
    out: dict[str, object] = {{}}
    out["one"] = await ctx.step.do("one", effect, i, "one")
    out["two"] = await ctx.step.do("two", effect, i, "two")
    await ctx.step.sleep("nap", "{NAP} seconds")
    out["three"] = await ctx.step.do("three", effect, i, "three")
    out["go"] = await ctx.step.wait_for_event("go", type="go", timeout="1 hour")
    out["four"] = await ctx.step.do("four", effect, i, "four")
    out["five"] = await ctx.step.do("five", effect, i, "five")
    return out
"""

SETTINGS = """
[runtime]
lease = "5 seconds"
"""


@dataclass
class Run:
    """One execution of a step body, as the ledger saw it."""

    token: str
    at: float

    @property
    def pid(self) -> int:
        return int(self.token.split("-")[0])


@dataclass
class Verdict:
    """What the ledger and the outputs say about one soak."""

    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    reruns: int = 0
    early_wakes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.early_wakes)


@dataclass
class Figures:
    """What one soak measured."""

    store: str
    instances: int
    workers: int
    concurrency: int
    kills: int = 0
    database_restarts: int = 0
    started_during_outage: int = 0
    deaths: list[str] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    events_before_wait: int = 0
    ambiguous_events: int = 0
    run_seconds: float = 0.0
    drain_seconds: float = 0.0
    verdict: Verdict = field(default_factory=Verdict)

    @property
    def instances_per_second(self) -> float:
        return self.instances / self.run_seconds if self.run_seconds else 0.0


# The check: the ledger against the outputs.


def read_ledger(path: Path) -> dict[tuple[str, str], list[Run]]:
    """(instance, step) -> the step body's executions, in the order they started."""
    runs: dict[tuple[str, str], list[Run]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            instance, step, token, at = line.split()
            runs[(instance, step)].append(Run(token, float(at)))
    return runs


def judge(
    outcomes: Mapping[str, tuple[str, Any]],
    payloads: dict[str, object],
    runs: dict[tuple[str, str], list[Run]],
    killed: set[int],
) -> Verdict:
    """Check every instance's outcome against the ledger (see the module docstring)."""
    verdict = Verdict()
    abandoned: set[tuple[str, int]] = set()  # (instance, killed process) already explained
    for instance, (status, output) in sorted(outcomes.items()):
        if status != "complete" or not isinstance(output, dict):
            verdict.lost.append(f"{instance}: ended {status}: {output!r:.300}")
            continue
        if output.get("go") != payloads[instance]:
            verdict.lost.append(
                f"{instance}: event payload {output.get('go')!r}, sent {payloads[instance]!r}"
            )
        for step in STEPS:
            executions = runs.get((instance, step), [])
            tokens = [r.token for r in executions]
            if output.get(step) not in tokens:
                verdict.lost.append(f"{instance} {step}: output {output.get(step)!r} never ran")
                continue
            journaled = tokens.index(output[step])
            for late in executions[journaled + 1 :]:
                verdict.duplicated.append(
                    f"{instance} {step}: ran again after it was journaled ({late.token})"
                )
            for run in executions[:journaled]:
                if run.pid not in killed:
                    verdict.duplicated.append(
                        f"{instance} {step}: ran twice; process {run.pid} was not killed"
                    )
                elif (instance, run.pid) in abandoned:
                    verdict.duplicated.append(
                        f"{instance} {step}: a second re-run for one kill of process {run.pid}"
                    )
                else:
                    abandoned.add((instance, run.pid))
                    verdict.reruns += 1
        _check_sleep(instance, output, runs, verdict)
    strays = {instance for instance, _ in runs} - set(outcomes)
    verdict.duplicated += [
        f"{instance}: steps ran for an instance never created" for instance in strays
    ]
    return verdict


def _check_sleep(
    instance: str, output: dict[str, Any], runs: dict[tuple[str, str], list[Run]], verdict: Verdict
) -> None:
    """Step three must start at least NAP after the journaled run of step two started."""
    two = [r for r in runs.get((instance, "two"), []) if r.token == output.get("two")]
    three = runs.get((instance, "three"), [])
    if two and three and three[0].at < two[0].at + NAP:
        verdict.early_wakes.append(
            f"{instance}: step three ran {two[0].at + NAP - three[0].at:.3f} s before the nap ended"
        )


def events_before_wait(sent_at: dict[str, float], runs: dict[tuple[str, str], list[Run]]) -> int:
    """Events sent before their instance reached the wait (buffered), by the ledger's clock."""
    return sum(
        1
        for instance, at in sent_at.items()
        if runs.get((instance, "three")) and at < runs[(instance, "three")][-1].at
    )


# The store under test.


@asynccontextmanager
async def database(store: str, folder: Path) -> AsyncIterator[tuple[str, Any]]:
    """The database URL to soak on, and its private server (None for SQLite)."""
    if store == "sqlite":
        yield f"sqlite:///{folder / 'soak.db'}", None
        return
    import pytest

    from tests.store.private_postgres import private_postgres

    try:
        with private_postgres() as server:
            yield server.url, server
    except pytest.skip.Exception as skipped:
        raise SystemExit(f"soak on postgres: {skipped.msg}") from None


# The driver.


class Workers:
    """``fw worker`` processes: started, killed, replaced, stopped."""

    def __init__(self, root: Path, logs: Path, env: dict[str, str], concurrency: int) -> None:
        self.root, self.logs, self.env, self.concurrency = root, logs, env, concurrency
        self.processes: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        self.died: set[int] = set()
        self.deaths: list[str] = []  # why each of ``died`` exited, from its log
        self.log_of: dict[int, Path] = {}
        logs.mkdir()

    async def start(self, count: int) -> None:
        self.processes = [self._spawn() for _ in range(count)]
        await asyncio.gather(*(self._started(p) for p in self.processes))

    def _spawn(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.log_of)}.log"
        process = start_worker(self.root, log, self.env, self.concurrency)
        self.log_of[process.pid] = log
        return process

    async def _started(self, process: subprocess.Popen[bytes]) -> None:
        await asyncio.to_thread(wait_until_started, process, self.log_of[process.pid], 60)

    async def kill_one(self, rng: random.Random) -> subprocess.Popen[bytes]:
        """SIGKILL a random worker and start another in its place; return the new one."""
        slot = rng.randrange(len(self.processes))
        victim = self.processes[slot]
        kill(victim)
        self.killed.add(victim.pid)
        self.processes[slot] = self._spawn()
        return self.processes[slot]

    def replace_dead(self) -> None:
        """Start a worker in place of any that exited on its own (and remember it)."""
        for slot, process in enumerate(self.processes):
            if process.poll() is not None:
                self.died.add(process.pid)
                tail = self.log_of[process.pid].read_text(errors="replace").splitlines()[-15:]
                self.deaths.append(
                    f"{self.log_of[process.pid].name} (pid {process.pid}) exited with "
                    f"{process.returncode}: " + " | ".join(tail)
                )
                self.processes[slot] = self._spawn()

    async def stop(self) -> list[int | None]:
        """SIGTERM every worker once it started (a SIGTERM before a process set its signal
        handlers kills it); their exit codes (None: it had to be killed)."""
        for process in self.processes:
            with contextlib.suppress(AssertionError):  # it died: its exit code says so
                await self._started(process)

        def stopped(process: subprocess.Popen[bytes]) -> int | None:
            try:
                return stop(process, timeout=60)
            except subprocess.TimeoutExpired:
                return None

        return list(await asyncio.gather(*(asyncio.to_thread(stopped, p) for p in self.processes)))

    def errors(self) -> list[str]:
        """ERROR lines and tracebacks the workers logged."""
        return [
            f"{log.name}: {line}"
            for log in sorted(self.logs.iterdir())
            for line in log.read_text(errors="replace").splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]


async def soak(store: str, args: argparse.Namespace, folder: Path) -> Figures:
    """Run one soak on ``store`` in ``folder``; return its figures and verdict."""
    from framework.runtime.app import App

    root = write_app(folder, {"soak_workflow.py": WORKFLOW}, SETTINGS, name="soakapp")
    sys.path.insert(0, str(folder))
    ledger = folder / "ledger.txt"
    figures = Figures(store, args.instances, args.workers, args.concurrency)
    ids = [f"soak-{n}" for n in range(args.instances)]
    payloads: dict[str, object] = {i: {"n": n} for n, i in enumerate(ids)}
    async with database(store, folder) as (url, server):
        app = App(root, database=url)
        previous = app.install()
        try:
            handle = app.handle("soak")
            for first in range(0, len(ids), 100):
                await handle.create_batch(
                    [{"params": None, "id": i} for i in ids[first : first + 100]]
                )
            env = {"FW_DATABASE_URL": url, "FW_SOAK_LEDGER": str(ledger)}
            workers = Workers(root, folder / "logs", env, args.concurrency)
            driver = Driver(app, workers, figures, random.Random(args.seed), server)
            events = Events(app, ledger, payloads)
            await driver.run(events, args.seconds)
            outcomes = {}
            for i in ids:
                status = await (await handle.get(i)).status()
                outcomes[i] = (
                    status.status,
                    status.output if status.output is not None else status.error,
                )
        finally:
            await app.close()
            app.uninstall(previous)
    runs = read_ledger(ledger)
    figures.verdict = judge(outcomes, payloads, runs, workers.killed | workers.died)
    figures.events_before_wait = events_before_wait(events.sent_at, runs)
    figures.ambiguous_events = events.ambiguous
    return figures


class Driver:
    """Starts the workers, sends the events, kills and restarts, waits for the end."""

    def __init__(
        self,
        app: Any,
        workers: Workers,
        figures: Figures,
        rng: random.Random,
        server: Any,
    ) -> None:
        self.app, self.workers, self.figures, self.rng = app, workers, figures, rng
        self.server = server  # a PrivatePostgres to restart once, or None
        self.last_fault = 0.0

    async def run(self, events: Events, seconds: float) -> None:
        ids = list(events.payloads)
        await events.send(self.rng.sample(ids, len(ids) // 2))  # buffered until the wait
        await self.workers.start(self.figures.workers)
        began = self.last_fault = time.monotonic()
        sending = asyncio.create_task(events.send_when_waiting())
        try:
            await self.kill_for(seconds, sending)
            ended_at = await self.drain(sending)
            await sending
        finally:
            sending.cancel()
            self.figures.exit_codes = await self.workers.stop()
        self.figures.run_seconds = ended_at - began
        self.figures.drain_seconds = ended_at - self.last_fault
        self.figures.kills = len(self.workers.killed)
        self.figures.deaths = self.workers.deaths
        self.figures.log_errors = self.workers.errors()

    async def kill_for(self, seconds: float, sending: asyncio.Task[None]) -> None:
        """Kill a random worker every few seconds until ``seconds`` pass or every instance
        ended."""
        deadline = time.monotonic() + seconds
        next_kill = time.monotonic() + self.rng.uniform(*KILL_EVERY)
        while time.monotonic() < deadline and not await self.tick(sending):
            if time.monotonic() >= next_kill:
                await self.workers.kill_one(self.rng)
                self.last_fault = time.monotonic()
                next_kill = self.last_fault + self.rng.uniform(*KILL_EVERY)
            await asyncio.sleep(0.1)

    async def drain(self, sending: asyncio.Task[None]) -> float:
        """Wait, killing no more, until every instance ended; return when."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not await self.tick(sending):
            if time.monotonic() > deadline:
                print(f"  drain timed out after {DRAIN_TIMEOUT:.0f} s", file=sys.stderr)
                break
            await asyncio.sleep(0.05)
        return time.monotonic()

    async def restart_database(self) -> None:
        """Stop the server, kill a worker (its replacement starts while the server is down),
        and start the server again once the replacement tried to connect, or after
        OUTAGE_AT_MOST seconds (well within the lease, so no living worker loses one)."""
        await asyncio.to_thread(self.server.stop)
        replacement = await self.workers.kill_one(self.rng)
        deadline = time.monotonic() + OUTAGE_AT_MOST
        while time.monotonic() < deadline:
            if "waiting for the database" in self.workers.log_of[replacement.pid].read_text():
                self.figures.started_during_outage += 1
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(self.server.start)
        self.figures.database_restarts += 1
        self.last_fault = time.monotonic()

    async def tick(self, sending: asyncio.Task[None]) -> bool:
        """Replace workers that died on their own, restart the database server once 40 % of
        the instances ended; return whether they all ended."""
        if sending.done() and sending.exception() is not None:
            raise RuntimeError("sending events failed") from sending.exception()
        self.workers.replace_dead()
        store = await self.app.store()
        counts: dict[str, int] = (await store.count_by_status()).get("soak", {})
        ended = sum(counts.get(s, 0) for s in ("complete", "errored", "terminated"))
        if (
            self.server is not None
            and not self.figures.database_restarts
            and ended >= RESTART_DATABASE_AT * self.figures.instances
        ):
            await self.restart_database()
        return ended >= self.figures.instances


class Events:
    """The driver's events: ``go`` to each instance, once, with its own payload."""

    def __init__(self, app: Any, ledger: Path, payloads: dict[str, object]) -> None:
        self.app, self.ledger, self.payloads = app, ledger, payloads
        self.sent_at: dict[str, float] = {}
        self.ambiguous = 0  # sends whose outcome the store could not tell, sent again

    async def send(self, instances: Sequence[str]) -> None:
        for instance in instances:
            self.sent_at[instance] = time.time()
            await self._send(instance)

    async def _send(self, instance: str) -> None:
        """Send one event. A connection cut while its COMMIT was in flight leaves it unknown
        whether it was stored: send it again (a second buffered ``go`` is never read); if the
        instance ended meanwhile, the first one was."""
        from framework.errors import InstanceStateError, StoreError

        handle = self.app.instance_handle("soak", instance)
        again = False
        while True:
            try:
                await handle.send_event("go", self.payloads[instance])
                return
            except StoreError as exc:
                if "may or may not have been applied" not in str(exc):
                    raise
                self.ambiguous += 1
                again = True
            except InstanceStateError:
                if not again:
                    raise
                return

    async def send_when_waiting(self) -> None:
        """Send the other events as the ledger shows each instance starting step three, the
        step before its wait (so each arrives during that step or during the wait)."""
        offset = 0
        while len(self.sent_at) < len(self.payloads):
            with contextlib.suppress(FileNotFoundError), self.ledger.open("rb") as ledger:
                ledger.seek(offset)
                chunk = ledger.read()
                chunk = chunk[: chunk.rfind(b"\n") + 1]
                offset += len(chunk)
            reached = [
                line.split()[0].decode()
                for line in chunk.splitlines()
                if line.split()[1] == b"three"
            ]
            await self.send([i for i in dict.fromkeys(reached) if i not in self.sent_at])
            await asyncio.sleep(0.05)


# Report.


def report(figures: Figures) -> str:
    v = figures.verdict
    lines = [
        f"{figures.store}: {figures.instances} instances, {figures.workers} workers x "
        f"concurrency {figures.concurrency}: {figures.kills} kills"
        + (
            f", {figures.database_restarts} database restart ({figures.started_during_outage} "
            "worker started while it was down)"
            if figures.database_restarts
            else ""
        )
        + (f", {len(figures.deaths)} workers exited on their own" if figures.deaths else ""),
        f"  lost {len(v.lost)}, duplicated {len(v.duplicated)}, re-run {v.reruns} "
        f"(in-flight steps of killed workers), early wakes {len(v.early_wakes)}",
        f"  {figures.instances_per_second:.1f} instances/s over {figures.run_seconds:.1f} s; "
        f"drained {figures.drain_seconds:.1f} s after the last fault; "
        f"{figures.events_before_wait} events sent before their wait"
        + (
            f", {figures.ambiguous_events} sent again after an ambiguous failure"
            if figures.ambiguous_events
            else ""
        ),
        f"  workers stopped with exit codes {figures.exit_codes}; "
        f"{len(figures.log_errors)} error lines in their logs",
    ]
    for title, items in (
        ("lost", v.lost),
        ("duplicated", v.duplicated),
        ("early wake", v.early_wakes),
        ("logged", figures.log_errors),
        ("exited", figures.deaths),
    ):
        lines += [f"  {title}: {item}" for item in items[:10]]
    return "\n".join(lines)


def passed(figures: Figures) -> bool:
    return (
        figures.verdict.ok
        and not figures.deaths
        and not figures.log_errors
        and all(code == 0 for code in figures.exit_codes)
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="how long the kills go on at most"
    )
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10, help="per worker")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (logs, ledger)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="  driver: %(name)s: %(message)s")
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # fw.store says it once
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    print(f"seed {args.seed} (--seed to repeat the kill schedule)")
    failed = False
    for store in ("sqlite", "postgres") if args.store == "both" else (args.store,):
        folder = Path(tempfile.mkdtemp(prefix=f"fw-soak-{store}-"))
        figures = asyncio.run(soak(store, args, folder))
        print(report(figures), flush=True)
        if passed(figures) and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"  logs and ledger kept in {folder}")
            failed = failed or not passed(figures)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
