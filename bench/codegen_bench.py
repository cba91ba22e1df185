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

``--imports 5,500`` measures only what importing ``_generated`` costs once fw is imported
(``python -X importtime``: median and minimum over 15 alternating runs per size).

``--typecheck 5,500`` measures instead what the typed app costs type checkers, for apps whose
every workflow waits for two events (one typed by a model) and runs a typed child
(``workflows.get(...).branch``). A user's module starts workflows, sends them events, reads
their results and, in a helper of workflow bodies, fans out to children and spawns one; it is
written twice, by ``workflows.get(name)`` (``user_get.py``) and by the per-workflow modules of
``_generated/handles/`` (``user_handles.py``). Each is edited then checked by ``mypy --strict``
incrementally (its cache warm from a run over the whole app, as in an editor or a pre-commit
hook) and by ``pyright`` (strict; no cache between runs, it reads what the module needs), each
timed in wall seconds and in CPU seconds (user and system: the machine's load moves it less).
The apps alternate within each round (``--rounds``, 3 by default); medians, and ratios to the
smallest app.
"""

from __future__ import annotations

import argparse
import os
import resource
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
            check=True,
            capture_output=True,
            text=True,
            env=env,
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


TYPED_WORKFLOW = textwrap.dedent(
    '''\
    """Workflow number {n}: waits for an approval, then runs a typed child."""

    from __future__ import annotations

    from pydantic import BaseModel

    from benchapp._generated import workflows
    from framework import WorkflowContext, workflow


    class Params(BaseModel):
        amount: int


    class Approval(BaseModel):
        approved: bool
        by: str = ""


    @workflow
    async def flow_{n}(ctx: WorkflowContext[Params]) -> list[int]:
        approval = await ctx.step.wait_for_event("approve", type="approval", model=Approval)
        await ctx.step.wait_for_event("note", type="comment")
        if not approval.approved:
            return []
        (child,) = await ctx.parallel(
            (workflows.get("flow-{child:04d}").branch({{"amount": ctx.params.amount - 1}}),)
        )
        return [ctx.params.amount, *child]
    '''
)
USER = textwrap.dedent(
    '''\
    """A module of the user's that starts workflows, sends them events, reads their results
    and runs children from a workflow body ({edit}), by ``workflows.get(name)``."""

    from benchapp._generated import workflows
    from benchapp.workflows.group0.flow_0000_workflow import Approval
    from framework import WorkflowContext


    async def main() -> list[int]:
        first = await workflows.get("flow-0000").create({{"amount": 3}}, id="a")
        await first.send_event("approval", Approval(approved=True))
        await first.send_event("comment", "fine")
        second = await workflows.get("flow-0001").create({{"amount": 2}})
        await second.send_event(type="approval", payload={{"approved": False}})
        return [*(await first.result()), *(await second.result())]


    async def fan_out(ctx: WorkflowContext[list[int]]) -> list[int]:
        child = workflows.get("flow-0002")
        outputs = await ctx.parallel([child.branch({{"amount": n}}) for n in ctx.params])
        spawned = await ctx.spawn(workflows.get("flow-0001"), {{"amount": 1}})
        await spawned.send_event("comment")
        return [n for output in outputs for n in output]
    '''
)
USER_HANDLES = textwrap.dedent(
    '''\
    """The same module ({edit}), by the per-workflow modules of ``_generated/handles/``."""

    from benchapp._generated.handles import flow_0000_workflow as flow_0000
    from benchapp._generated.handles import flow_0001_workflow as flow_0001
    from benchapp._generated.handles import flow_0002_workflow as flow_0002
    from benchapp.workflows.group0.flow_0000_workflow import Approval
    from framework import WorkflowContext


    async def main() -> list[int]:
        first = await flow_0000.handle.create({{"amount": 3}}, id="a")
        await first.send_event("approval", Approval(approved=True))
        await first.send_event("comment", "fine")
        second = await flow_0001.handle.create({{"amount": 2}})
        await second.send_event(type="approval", payload={{"approved": False}})
        return [*(await first.result()), *(await second.result())]


    async def fan_out(ctx: WorkflowContext[list[int]]) -> list[int]:
        outputs = await ctx.parallel([flow_0002.handle.branch({{"amount": n}}) for n in ctx.params])
        spawned = await ctx.spawn(flow_0001.handle, {{"amount": 1}})
        await spawned.send_event("comment")
        return [n for output in outputs for n in output]
    '''
)
USERS = {"get": USER, "handles": USER_HANDLES}
"""The user's module in its two spellings: ``user_<key>.py``."""


def build_typed_app(parent: Path, size: int) -> Path:
    """An app of ``size`` typed workflows (events and children), generated, and the user's
    module in both spellings."""
    root = parent / "benchapp"
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    for n in range(size):
        folder = root / "workflows" / f"group{n % 10}"
        folder.mkdir(exist_ok=True)
        (folder / "__init__.py").write_text("")
        source = TYPED_WORKFLOW.format(n=n, child=(n + 1) % size)
        (folder / f"flow_{n:04d}_workflow.py").write_text(source)
    (root / "fw.toml").write_text(TOML)
    checked(root)
    for key, text in USERS.items():
        (parent / f"user_{key}.py").write_text(text.format(edit=0))
    (parent / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    (parent / "pyrightconfig.json").write_text('{"typeCheckingMode": "strict"}')
    return root


class TypedApp:
    """A typed app of some size in a folder, and the checker runs over its user's modules."""

    def __init__(self, parent: Path, size: int) -> None:
        self.parent, self.size, self.edits = parent, size, 0
        build_typed_app(parent, size)
        bin_dir = Path(sys.executable).parent
        self.mypy = [str(bin_dir / "mypy"), "--config-file", "mypy.ini"]
        self.pyright = [str(bin_dir / "pyright"), "--pythonpath", sys.executable]

    def run(self, *command: str) -> float:
        """Seconds ``command`` takes in the app's folder (it must find no error)."""
        return self.run_timed(*command)[0]

    def run_timed(self, *command: str) -> tuple[float, float]:
        """Wall seconds and CPU seconds (user and system, of the process and its children)
        ``command`` takes in the app's folder (it must find no error). The CPU time moves less
        than the wall time with the load of a shared machine."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, cwd=self.parent, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        return seconds, cpu

    def cold(self) -> float:
        """mypy over the whole app and both user modules, filling its cache."""
        return self.run(*self.mypy, "benchapp", *(f"user_{key}.py" for key in USERS))

    def round(self) -> dict[str, float]:
        """One edit of each user module, checked by mypy (warm cache) and pyright."""
        self.edits += 1
        samples: dict[str, float] = {}
        for key, text in USERS.items():
            module = f"user_{key}.py"
            (self.parent / module).write_text(text.format(edit=self.edits))
            wall, cpu = self.run_timed(*self.mypy, module)
            samples[f"mypy, {key} (warm)"], samples[f"mypy, {key} (warm) CPU"] = wall, cpu
            wall, cpu = self.run_timed(*self.pyright, module)
            samples[f"pyright, {key}"], samples[f"pyright, {key} CPU"] = wall, cpu
        return samples


def typecheck_table(sizes: list[int], rounds: int) -> dict[int, dict[str, float]]:
    """Medians over ``rounds`` of each checker on each spelling, the apps alternating in each
    round (the machine's load drifts), with the ratio of each to the smallest app."""
    with tempfile.TemporaryDirectory() as folder:
        apps = {size: TypedApp(Path(folder) / f"app{size}", size) for size in sizes}
        cold = {size: app.cold() for size, app in apps.items()}
        samples: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
        for _ in range(rounds):
            for size, app in apps.items():
                samples[size].append(app.round())
    rows: dict[int, dict[str, float]] = {}
    for size in sizes:
        row = {"mypy, whole app (cold)": cold[size]}
        for column in samples[size][0]:
            row[column] = statistics.median(s[column] for s in samples[size])
        rows[size] = row
    smallest = rows[min(sizes)]
    for row in rows.values():
        for column in [c for c in row if "(cold)" not in c]:
            row[f"{column} ratio"] = row[column] / smallest[column]
    return rows


def print_table(title: str, label: str, rows: dict[int, dict[str, float]]) -> None:
    columns = list(next(iter(rows.values())))
    print(f"{title}: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median s")
    print()
    print(f"| {label} | " + " | ".join(columns) + " |")
    print("|---:|" + "---:|" * len(columns))
    for size, row in rows.items():
        print(f"| {size:,} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


def import_table(sizes: list[int], rounds: int) -> dict[int, dict[str, float]]:
    """Milliseconds ``import <app>._generated`` takes once fw is imported (``-X importtime``,
    bytecode cached), median and minimum over ``rounds`` alternating runs per app size."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    samples: dict[int, list[float]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory() as folder:
        roots = {size: build_app(Path(folder) / str(size), size) for size in sizes}
        for root in roots.values():
            checked(root)
        for _ in range(rounds):
            for size, root in roots.items():
                script = (
                    f"import sys; sys.path.insert(0, {str(root.parent)!r}); "
                    "import framework.runtime.registry; import benchapp._generated"
                )
                err = subprocess.run(
                    [sys.executable, "-X", "importtime", "-c", script],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                ).stderr
                line = [x for x in err.splitlines() if x.rstrip().endswith("| benchapp._generated")]
                samples[size].append(int(line[-1].split("|")[1]) / 1000)
    return {
        size: {"median ms": statistics.median(xs), "min ms": min(xs)}
        for size, xs in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,100,1000", help="comma-separated app sizes")
    parser.add_argument("--typecheck", default="", help="app sizes for the type-check table")
    parser.add_argument("--rounds", type=int, default=3, help="type-check rounds (medians)")
    parser.add_argument("--imports", default="", help="app sizes for the import-cost table")
    arguments = parser.parse_args()
    if arguments.imports:
        sizes = [int(size) for size in arguments.imports.split(",")]
        imports = import_table(sizes, max(arguments.rounds, 15))
        print_table("import _generated after fw", "workflows", imports)
        return
    if arguments.typecheck:
        sizes = [int(size) for size in arguments.typecheck.split(",")]
        typed = typecheck_table(sizes, arguments.rounds)
        print_table("fw type-check benchmark", "workflows", typed)
        return
    sizes = [int(size) for size in arguments.sizes.split(",")]
    rows = {size: measure(size) for size in sizes}
    print_table("fw codegen benchmark", "workflow files", rows)


if __name__ == "__main__":
    main()
