"""Docs are code: every block of README.md and docs/*.md meant to run is run, as a reader
would (tests/docs_runner.py; README "Docs are tested"); the others say they are not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_runner import REPO, blocks, runs

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
KNOWN_TAGS = {"python": {"no-run", "pytest"}, "console": {"run"}}


def test_every_block_says_whether_it_runs() -> None:
    unknown = [
        f"{b.where}: {b.language} {' '.join(sorted(b.tags))}"
        for page in PAGES
        for b in blocks(page)
        if b.tags - KNOWN_TAGS.get(b.language, set())
    ]
    assert unknown == []


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(runs(b) for b in blocks(p))],
    ids=lambda p: p.relative_to(REPO).as_posix(),
)
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FW_DATABASE_URL"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "tests.docs_runner", str(page), str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-5000:]
