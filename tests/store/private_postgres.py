"""A throwaway PostgreSQL server for tests that restart or stop the database.

Restarting the shared test server would break every other test (and every other engineer's
run) using it at that moment, so such tests get a server of their own: ``initdb`` into a
temporary folder, started on a free port, removed afterwards. As root, the server runs as the
``postgres`` user (PostgreSQL refuses to run as root). When the binaries are missing, the
tests using it skip, saying why.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


class PrivatePostgres:
    """A PostgreSQL server in a temporary folder."""

    def __init__(
        self, bindir: Path, folder: Path, port: int, as_postgres: bool, listen: list[str]
    ) -> None:
        self.listen = ["127.0.0.1", *listen]
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.port = port
        self._prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [*self._prefix, str(self.bindir / args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed: {result.stderr}{result.stdout}\n{tail}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        if len(self.listen) > 1:  # it listens only on the given addresses: trust them all
            hba = self.data / "pg_hba.conf"
            hba.write_text(hba.read_text() + "host all all 0.0.0.0/0 trust\n")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses={','.join(self.listen)} "
            "-c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def restart(self) -> None:
        """A fast restart: every connection is closed, in-flight transactions roll back."""
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")


def _bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_postgres(listen: list[str] | None = None) -> Iterator[PrivatePostgres]:
    """Start a private server, on 127.0.0.1 and the ``listen`` addresses (or skip the test
    when that is impossible here)."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    as_postgres = os.geteuid() == 0
    if as_postgres and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start a PostgreSQL server")
    folder = Path(tempfile.mkdtemp(prefix="fw-pg-"))
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    server = PrivatePostgres(bindir, folder, _free_port(), as_postgres, listen or [])
    try:
        try:
            server.init()
            server.start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot start a private PostgreSQL server: {exc}")
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
