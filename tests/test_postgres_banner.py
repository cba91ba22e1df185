"""``make test`` says loudly, in its last lines, when the PostgreSQL half was skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ENV, PG_SKIP_REASON, postgres_server_url

REPO = Path(__file__).resolve().parents[1]
ONE_POSTGRES_TEST = "tests/store/test_states_agree.py::test_the_previous_releases_commits_follow_the_table_too"


def _pytest(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", ONE_POSTGRES_TEST, "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()


def test_a_run_without_postgres_ends_with_a_banner_saying_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != PG_ENV}
    last = _pytest(env)[-4:]
    assert "PostgreSQL NOT TESTED" in last[0]
    assert f"1 test skipped because {PG_ENV} is not set" in last[1]
    assert f"{PG_ENV}=postgresql://" in last[2]


def test_a_run_with_postgres_ends_quietly() -> None:
    if postgres_server_url() is None:
        pytest.skip(PG_SKIP_REASON)
    lines = _pytest(dict(os.environ))
    assert "1 passed" in lines[-1]
    assert not any("PostgreSQL NOT TESTED" in line for line in lines)
