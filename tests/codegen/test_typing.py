"""The generated package under real mypy (--strict) and pyright (strict), as Temporal does.

Each checker runs targeting the oldest and the newest supported Python (``TARGETS``).

Sample apps (``sample_apps.py``) are generated into a temporary project with the case files of
``tests/typing_cases/``; each checker runs once over all of it. A case file marks each
expected error with ``# assert-type-error-<checker>: 'regex'`` on the lines above it (a sample
app's workflow file may too); every other error, in the cases, the sample apps, a scaffolded
app or the generated code, fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from framework.codegen import run_codegen
from framework.codegen.scaffold import init_app, new_step, new_workflow
from tests.codegen.sample_apps import SAMPLE_APPS, write_app

CASES = Path(__file__).parents[1] / "typing_cases"
REPO = Path(__file__).parents[2]
MARKER = re.compile(r"#\s*assert-type-error-(mypy|pyright):\s*'(.*)'\s*$")
MYPY_LINE = re.compile(r"^(?P<file>[^:]+\.py):(?P<line>\d+): error: (?P<message>.*)$")

Errors = dict[tuple[str, int], list[str]]
TARGETS = ["3.11", "3.13"]
"""The Python versions the checkers target: the oldest and the newest fw supports."""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("typing")
    for name, files in SAMPLE_APPS.items():
        assert run_codegen(write_app(base, name, files)).ok
    init_app(base / "scaffolded")
    new_workflow(base / "scaffolded", "onboarding")
    new_step(base / "scaffolded", "charge-card")
    assert run_codegen(base / "scaffolded").ok
    for case in sorted(CASES.glob("*_cases.py")):
        shutil.copy(case, base / case.name)
    (base / "mypy.ini").write_text("[mypy]\nstrict = True\nwarn_unreachable = True\n")
    pyright: dict[str, object] = {"typeCheckingMode": "strict"}
    pyright["reportUnusedExpression"] = False
    (base / "pyrightconfig.json").write_text(json.dumps(pyright))
    return base


def targets(base: Path) -> list[str]:
    return sorted([*SAMPLE_APPS, "scaffolded", *(p.name for p in base.glob("*_cases.py"))])


def expected_errors(base: Path, checker: str) -> dict[tuple[str, int], list[str]]:
    """(file, line) -> the regexes the checker's errors on that line must match."""
    expected: dict[tuple[str, int], list[str]] = defaultdict(list)
    for case in sorted(base.rglob("*.py")):
        pending: list[str] = []
        for number, line in enumerate(case.read_text().splitlines(), start=1):
            marker = MARKER.search(line)
            if marker:
                if marker.group(1) == checker:
                    pending.append(marker.group(2))
            elif line.strip() and pending:
                expected[(case.relative_to(base).as_posix(), number)] = pending
                pending = []
    return expected


def compare(checker: str, actual: Errors, expected: Errors, output: str) -> None:
    unexpected = {where: messages for where, messages in actual.items() if where not in expected}
    missing = {
        where: pattern
        for where, patterns in expected.items()
        for pattern in patterns
        if not any(re.search(pattern, message) for message in actual.get(where, []))
    }
    assert not unexpected and not missing, (
        f"{checker}: unexpected errors {unexpected}\nmissing errors {missing}\n{output}"
    )
    assert len(expected) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_mypy_strict(project: Path, target: str) -> None:
    cache = REPO / ".mypy_cache" / f"fw-typing-cases-{target}"
    command = [
        *(sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(cache)),
        *("--python-version", target),
    ]
    completed = subprocess.run(
        [*command, "--no-pretty", "--no-error-summary", *targets(project)],
        cwd=project, capture_output=True, text=True, timeout=240,
    )
    actual: Errors = defaultdict(list)
    for line in completed.stdout.splitlines():
        match = MYPY_LINE.match(line)
        if match:
            actual[(match["file"], int(match["line"]))].append(match["message"])
    assert completed.returncode in (0, 1), completed.stderr
    compare("mypy", actual, expected_errors(project, "mypy"), completed.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_pyright_strict(project: Path, target: str) -> None:
    pyright = Path(sys.executable).parent / "pyright"
    completed = subprocess.run(
        [
            *(str(pyright), "--outputjson", "--pythonpath", sys.executable),
            *("--pythonversion", target, *targets(project)),
        ],
        cwd=project, capture_output=True, text=True, timeout=240,
    )
    report = json.loads(completed.stdout)
    actual: Errors = defaultdict(list)
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            file = Path(diagnostic["file"]).relative_to(project).as_posix()
            line = diagnostic["range"]["start"]["line"] + 1
            actual[(file, line)].append(diagnostic["message"])
    assert report["summary"]["filesAnalyzed"] >= 20
    compare("pyright", actual, expected_errors(project, "pyright"), completed.stdout)
