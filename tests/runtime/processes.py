"""Worker processes for tests: start them, kill them, stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def worker_command(app_dir: Path, concurrency: int = 20) -> list[str]:
    """The command line of ``fw worker`` for ``app_dir``."""
    return [
        sys.executable,
        "-m",
        "framework",
        "worker",
        "--app",
        str(app_dir),
        "--concurrency",
        str(concurrency),
    ]


def start_worker(
    app_dir: Path, log: Path, env: dict[str, str] | None = None, concurrency: int = 20
) -> subprocess.Popen[bytes]:
    """Start a worker process whose output goes to ``log``."""
    environment = {**os.environ, **(env or {}), "PYTHONPATH": f"{app_dir.parent}{os.pathsep}{REPO}"}
    with log.open("ab") as out:
        return subprocess.Popen(
            worker_command(app_dir, concurrency),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: the process dies at once, mid-whatever."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM and wait; return the exit code. A process that does not stop in time is
    killed (so no test leaves a worker behind) and the timeout raised."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise


def wait_until_started(process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Block until the worker logged that it started (its signal handlers are set)."""
    import time

    deadline = time.monotonic() + timeout
    marker = f":{process.pid}:"
    while time.monotonic() < deadline:
        if log.exists() and any(
            marker in line and "started" in line for line in log.read_text().splitlines()
        ):
            return
        if process.poll() is not None:
            raise AssertionError(
                f"worker exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        time.sleep(0.05)
    raise AssertionError(f"worker {process.pid} did not start in {timeout} s")
