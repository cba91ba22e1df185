"""Creating instances over HTTP: ``POST /api/workflows/{name}/instances`` through ``fw serve``
(with ``--worker``, which runs the instances beside it), beside the floor of a trivial
Starlette endpoint served by the same uvicorn setup on the same machine.

    .venv/bin/python -m bench.http_bench                     # SQLite, and PostgreSQL if reachable
    .venv/bin/python -m bench.http_bench --store sqlite --seconds 5 --rounds 5
    .venv/bin/python -m bench.http_bench --compare /tmp/before   # and another checkout's fw

The load generator is a small asyncio HTTP/1.1 client: ``--concurrency`` keep-alive
connections to 127.0.0.1, each sending its next request as soon as the previous answer is
read, for ``--seconds``. Rounds rotate over the floor and fw (and ``--compare``'s fw); each
reports requests/s, the p50/p99 latency and the server's CPU time per request (read from
``/proc``: it holds whatever share of a busy machine the server got), and the table gives the
medians over rounds and each server's ratio to the floor. fw's CPU includes its worker running
the instances created.
The fw server gets a 3-step workflow whose params are a small model, the body
``{"params": {"order": n, "customer": "c-1"}}``; every create is checked to answer 201.

PostgreSQL uses a scratch database on ``--database`` (default ``FW_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.postgres_bench import Scratch

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = """
    from pydantic import BaseModel
    from framework import workflow, WorkflowContext

    class Order(BaseModel):
        order: int
        customer: str

    async def add(x: int) -> int:
        return x + 1

    @workflow
    async def three(ctx: WorkflowContext[Order]) -> int:
        x = await ctx.step.do("one", add, ctx.params.order)
        x = await ctx.step.do("two", add, x)
        return await ctx.step.do("three", add, x)
"""
FLOOR = """
import asyncio, sys
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from framework.http.server import bind_socket, serve

async def create(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"id": "x", "params": body["params"]}, status_code=201)

app = Starlette(routes=[Route("/api/workflows/three/instances", create, methods=["POST"])])
sock = bind_socket("127.0.0.1", int(sys.argv[1]))  # as fw serve binds (TCP_NODELAY)
asyncio.run(serve(app, sock, asyncio.Event()))
"""


def make_app(parent: Path, url: str) -> Path:
    from framework.codegen import run_codegen

    root = parent / "httpbench"
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    (root / "fw.toml").write_text(f'[app]\nname = "httpbench"\n[runtime]\ndatabase = "{url}"\n')
    (root / "workflows" / "three_workflow.py").write_text(textwrap.dedent(WORKFLOW))
    assert run_codegen(root).ok
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], port: int, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}") from None
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command} did not listen on {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def load(port: int, concurrency: int, seconds: float) -> dict[str, float]:
    """Requests/s and latencies of ``concurrency`` keep-alive connections for ``seconds``."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    counter = 0

    async def connection() -> None:
        nonlocal counter
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                counter += 1
                body = json.dumps({"params": {"order": counter, "customer": "c-1"}}).encode()
                request = (
                    b"POST /api/workflows/three/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                began = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append((time.perf_counter() - began) * 1000)
                status = int(head.split(b" ", 2)[1])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    assert set(statuses) == {201}, f"answers other than 201: {statuses}"
    latencies.sort()
    return {
        "requests/s": len(latencies) / elapsed,
        "p50 ms": statistics.median(latencies),
        "p99 ms": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    process: subprocess.Popen[bytes], port: int, options: argparse.Namespace
) -> dict[str, float]:
    """One round against ``port``, with the server's CPU per request: what the server
    spends, whatever share of the machine it got (other load only stretches time)."""
    before = cpu_seconds(process.pid)
    began = time.perf_counter()
    found = asyncio.run(load(port, options.concurrency, options.seconds))
    requests = found["requests/s"] * (time.perf_counter() - began)
    found["server cpu us/request"] = (cpu_seconds(process.pid) - before) / requests * 1e6
    return found


def start_fw(checkout: Path, scratch: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    """``fw serve --worker`` of the fw in ``checkout``, for an app of its own in ``scratch``."""
    scratch.mkdir()
    root = make_app(scratch, url)
    env = {
        **os.environ,
        "FW_API_TOKEN": "",
        "PYTHONPATH": os.pathsep.join([str(scratch), str(checkout)]),
    }
    command = [sys.executable, "-m", "framework", "serve", "--app", str(root), "--port",
               str(port), "--worker"]  # fmt: skip
    return start(command, port, checkout, env)


def run(label: str, urls: dict[str, str], options: argparse.Namespace) -> None:
    """Rounds rotating over the floor and each fw (``urls``: its store, by name)."""
    checkouts = {"fw": REPO, "fw at --compare": Path(options.compare or REPO).resolve()}
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    with tempfile.TemporaryDirectory(prefix="fw-http-bench-") as scratch:
        try:
            floor_file = Path(scratch) / "floor.py"
            floor_file.write_text(FLOOR)
            port = free_port()
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            floor = start([sys.executable, str(floor_file), str(port)], port, REPO, env)
            servers["floor"] = (floor, port)
            for n, (name, url) in enumerate(urls.items()):
                port = free_port()
                servers[name] = (
                    start_fw(checkouts[name], Path(scratch) / f"app{n}", url, port),
                    port,
                )
            results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for _, port in servers.values():  # warm up
                asyncio.run(load(port, options.concurrency, 1))
            names = list(servers)
            for n in range(options.rounds):
                for name in names[n % len(names) :] + names[: n % len(names)]:
                    found = measure(*servers[name], options)
                    results[name].append(found)
                    shown = ", ".join(f"{key} {value:,.1f}" for key, value in found.items())
                    print(f"  {label} {name}: {shown}", flush=True)
        finally:
            for process, _ in servers.values():
                stop(process)
    medians = {
        name: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        for name, rounds in results.items()
    }
    floor_r = medians["floor"]
    rows = [
        f"| {name if name != 'floor' else 'trivial Starlette endpoint (floor)'} | "
        f"{m['requests/s']:,.0f} | {m['p50 ms']:.1f} | {m['p99 ms']:.1f} | "
        f"{m['server cpu us/request']:,.0f} µs | "
        f"{m['requests/s'] / floor_r['requests/s']:.2f}x | "
        f"{m['server cpu us/request'] / floor_r['server cpu us/request']:.1f}x |"
        for name, m in medians.items()
    ]
    print(
        f"\n{label}, concurrency {options.concurrency}, {options.rounds} rounds of "
        f"{options.seconds:g} s (medians; fw is `fw serve --worker` answering creates):\n"
        "| server | requests/s | p50 ms | p99 ms | server CPU per request | requests/s / floor "
        "| CPU / floor |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=os.environ.get("FW_TEST_DATABASE_URL"))
    parser.add_argument(
        "--compare",
        metavar="CHECKOUT",
        help="also serve the fw of another checkout (a folder holding framework/, e.g. "
        "`git worktree add /tmp/before main`) in the same rounds, on a store of its own",
    )
    options = parser.parse_args()
    names = ["fw", "fw at --compare"] if options.compare else ["fw"]
    if options.store != "postgres":
        with tempfile.TemporaryDirectory(prefix="fw-http-db-") as folder:
            run(
                "SQLite",
                {name: f"sqlite:///{folder}/http{n}.db" for n, name in enumerate(names)},
                options,
            )
    if options.store != "sqlite":
        if not options.database:
            print("PostgreSQL skipped: set FW_TEST_DATABASE_URL or pass --database")
            return
        with contextlib.ExitStack() as stack:
            databases = [
                stack.enter_context(Scratch(options.database, f"http{n}"))
                for n in range(len(names))
            ]
            run(
                "PostgreSQL",
                {name: d.url for name, d in zip(names, databases, strict=True)},
                options,
            )


if __name__ == "__main__":
    main()
