"""`make demo` ends by saying what to try next (run with this interpreter's installed venv)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("make") is None or not (VENV / ".installed").exists(),
    reason="needs make and a venv made by make",
)
def test_make_demo_says_what_to_try_next() -> None:
    done = subprocess.run(
        ["make", "-s", "demo", f"VENV={VENV}"], cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    last = done.stdout.split("\n\nNext: ", 1)[1]
    assert f". {VENV}/bin/activate" in last
    assert "fw dev --app example_app" in last and "http://127.0.0.1:8787/studio" in last
    assert "fw instances list --app example_app" in last
    assert done.stdout.count("complete") >= 3  # the demo's instances ended well
