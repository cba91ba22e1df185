"""Codegen benchmark: cold and warm runs over generated apps of 100 and 1,000 workflow files.

Run ``.venv/bin/python -m bench.codegen_bench`` (or ``python bench/codegen_bench.py``); add
``--sizes 100,1000,3000`` to choose app sizes. Prints a Markdown table:

- cold: no cache, no ``_generated/``, fw.toml without ``[[workflows]]`` (parse everything,
  write everything, reconcile fw.toml with tomlkit);
- one edited: one workflow file's body edited since the last run (one parse; the output and
  fw.toml stay as they are, so nothing is rendered or written and tomlkit is skipped);
- one renamed: one workflow renamed by ``@workflow(name=...)`` (one parse, the generated files
  rewritten, fw.toml reconciled with tomlkit);
- nothing changed: every file from the cache; no rendering, no tomlkit, nothing written;
- ``fw codegen`` CLI: the one-renamed run as a user sees it (process start included);
- import ``_generated``: importing the generated package in a fresh interpreter (bytecode
  cached, as after the first import).

Timings are medians, in seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from framework.codegen import run_codegen
from framework.codegen.cache import RACY_NS

WORKFLOW = textwrap.dedent(
    '''\
    """Workflow number {n}."""

    from __future__ import annotations

    from pydantic import BaseModel

    from framework import Retries, WorkflowContext, workflow

    from ..models import Customer


    class Params(BaseModel):
        customer: Customer
        amount: int
        note: str | None = None


    class Result(BaseModel):
        receipt: str
        items: list[str]


    async def charge(amount: int) -> str:
        return f"r-{{amount}}"


    @workflow
    async def flow_{n}(ctx: WorkflowContext[Params]) -> Result:
        receipt = await ctx.step.do("charge", charge, ctx.params.amount, retries=Retries(limit=3))
        await ctx.step.sleep("cool-off", "1 minute")
        return Result(receipt=receipt, items=[ctx.params.customer.name])
    '''
)
MODELS = "from pydantic import BaseModel\n\n\nclass Customer(BaseModel):\n    name: str\n"
TOML = '[app]\nname = "benchapp"\n\n[defaults]\ntimeout = "10 minutes"  # a comment\n'


def build_app(parent: Path, size: int) -> Path:
    """An app of ``size`` workflow files in 10 folders, with mtimes in the past."""
    root = parent / "benchapp"
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    (root / "workflows" / "models.py").write_text(MODELS)
    for n in range(size):
        folder = root / "workflows" / f"group{n % 10}"
        folder.mkdir(exist_ok=True)
        (folder / "__init__.py").write_text("")
        (folder / f"flow_{n:04d}_workflow.py").write_text(WORKFLOW.format(n=n))
    reset(root)
    return root


def reset(root: Path) -> None:
    """Back to a cold start: no cache, no output, a fresh fw.toml; files aged 1 minute."""
    shutil.rmtree(root / ".fw", ignore_errors=True)
    shutil.rmtree(root / "_generated", ignore_errors=True)
    (root / "fw.toml").write_text(TOML)
    past = time.time() - 60
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(Path(folder, name), (past, past))


def edit_one(root: Path, counter: list[int]) -> None:
    """Edit the body of one workflow file (its generated output stays the same)."""
    counter[0] += 1
    path = root / "workflows" / "group0" / "flow_0000_workflow.py"
    path.write_text(WORKFLOW.format(n=0) + f"# edit {counter[0]}\n")


def rename_one(root: Path, counter: list[int]) -> None:
    """Rename one workflow (its generated output and its fw.toml table change)."""
    counter[0] += 1
    path = root / "workflows" / "group0" / "flow_0000_workflow.py"
    renamed = f'@workflow(name="renamed-{counter[0]}")\n'
    path.write_text(WORKFLOW.format(n=0).replace("@workflow\n", renamed))


def timed(action: Callable[[], object], before: Callable[[], object], repeat: int) -> float:
    """The median seconds of ``action`` over ``repeat`` runs, ``before`` untimed each time."""
    samples = []
    for _ in range(repeat):
        before()
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def checked(root: Path) -> None:
    result = run_codegen(root)
    assert result.ok, [p.format(root) for p in result.problems[:3]]


def fw_cli(root: Path) -> None:
    fw = Path(sys.executable).parent / "fw"
    subprocess.run([str(fw), "codegen", "--app", str(root)], check=True, capture_output=True)


def import_seconds(root: Path) -> float:
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); "
        "import benchapp._generated; print(time.perf_counter() - t)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    samples = []
    for _ in range(6):
        completed = subprocess.run(
            [sys.executable, "-c", script, str(root.parent)],
            check=True, capture_output=True, text=True, env=env,
        )
        samples.append(float(completed.stdout))
    return statistics.median(samples[1:])


def measure(size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        root = build_app(Path(folder), size)
        counter = [0]
        row = {"cold": timed(lambda: checked(root), lambda: reset(root), repeat=3)}
        time.sleep(RACY_NS / 1e9)  # let the last run's output age, as between real edits
        checked(root)
        row["one edited"] = timed(lambda: checked(root), lambda: edit_one(root, counter), 5)
        row["nothing changed"] = timed(lambda: checked(root), lambda: None, 5)
        row["one renamed"] = timed(lambda: checked(root), lambda: rename_one(root, counter), 5)
        row["fw codegen CLI"] = timed(lambda: fw_cli(root), lambda: rename_one(root, counter), 3)
        row["import _generated"] = import_seconds(root)
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,100,1000", help="comma-separated app sizes")
    sizes = [int(size) for size in parser.parse_args().sizes.split(",")]
    rows = {size: measure(size) for size in sizes}
    columns = list(next(iter(rows.values())))
    print(f"fw codegen benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median s")
    print()
    print("| workflow files | " + " | ".join(columns) + " |")
    print("|---:|" + "---:|" * len(columns))
    for size, row in rows.items():
        print(f"| {size:,} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
