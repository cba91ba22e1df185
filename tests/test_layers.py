"""The package's layers point one way: cli -> http -> codegen / runtime -> store -> errors.

Read from each module's source (every ``import``, including those inside functions and under
``TYPE_CHECKING``: a type-only arrow up is still an arrow up), so an import from a lower layer
to a higher one fails here, naming the file and line, instead of coming back unnoticed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import framework
import framework.errors

PACKAGE = Path(framework.__file__).parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("app_root", "exports", "naming", "resources"),
    ("store",),
    ("codegen", "runtime"),
    ("http", "testing", "client"),
    ("cli",),
    ("framework", "__main__"),
)
"""Rooms from the bottom up: a module may import its own room and any room of a lower layer,
never a room of its own layer or above. ``framework`` is the package's ``__init__`` (the
public API, which re-exports from every layer); the second layer holds the base modules that
every layer shares (each imports only ``errors``)."""

RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}

NOT_FW_ERRORS = {
    "framework.errors.NonRetryableError": "you raise it from a step: your failure, not fw's",
    "framework.errors.InjectedFailure": "the test environment raises it in your step's place",
}
"""Exception classes of ``errors.py`` that are not ``FwError``s, and why."""

OUTSIDE_ERRORS = {
    "framework.runtime.suspension.Suspend": "control flow of a run (a BaseException), no error",
    "framework.http.problems.ApiError": "an HTTP answer, raised and answered inside http",
    "framework.http.inputs.UnreadableJsonError": "turned into an ApiError inside http.inputs",
    "framework.http.protocol.HeadTooLarge": (
        "raised in httptools' parser callbacks to stop a head over the limit; uvicorn answers 400"
    ),
}
"""Exception classes defined outside ``errors.py``: none reaches a caller of fw's API."""


@dataclass(frozen=True)
class Import:
    """One import of one fw module by another."""

    file: str
    line: int
    importer: str
    imported: str


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str:
    """The room of a module: its subpackage or top-level module (``framework`` itself for
    the package's ``__init__``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "framework"


def is_module(dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (PACKAGE / relative).with_suffix(".py").is_file() or (
        PACKAGE / relative / "__init__.py"
    ).is_file()


def fw_imports(path: Path) -> list[Import]:
    """Every import of a fw module in ``path``."""
    file = str(path.relative_to(PACKAGE.parent))
    return imports_in(path.read_text(), file, module_name(path), path.name == "__init__.py")


def imports_in(source: str, file: str, importer: str, is_package: bool) -> list[Import]:
    """Every import of a fw module in ``source`` (module ``importer``), relative imports
    resolved."""
    package = importer if is_package else importer.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, file)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from framework import resources`` imports a module; ``from framework import
            # workflow`` imports a name of the package's ``__init__``.
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            targets = [name if is_module(name) else base for name in submodules]
        for target in targets:
            if target == "framework" or target.startswith("framework."):
                found.append(Import(file, node.lineno, importer, target))
    return found


def all_imports() -> list[Import]:
    return [found for path in sorted(PACKAGE.rglob("*.py")) for found in fw_imports(path)]


def test_every_room_has_a_layer() -> None:
    rooms = {room_of(module_name(path)) for path in PACKAGE.rglob("*.py")}

    assert rooms - set(RANK) == set(), "place each new subpackage or top-level module in LAYERS"
    assert set(RANK) - rooms == set(), "LAYERS names a room that no longer exists"


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{i.file}:{i.line}: {i.importer} imports {i.imported}: "
        f"{room_of(i.importer)} (layer {RANK[room_of(i.importer)]}) may not import "
        f"{room_of(i.imported)} (layer {RANK[room_of(i.imported)]})"
        for i in all_imports()
        if room_of(i.importer) != room_of(i.imported)
        and RANK[room_of(i.imported)] >= RANK[room_of(i.importer)]
    ]

    assert upward == []


def test_the_check_sees_imports_in_functions_under_type_checking_and_relative() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import framework.store.base\n"
        "from framework import resources, workflow\n"
        "if TYPE_CHECKING:\n"
        "    from framework.testing.faults import FaultPlan\n"
        "def f() -> None:\n"
        "    from framework.codegen.render import render_template\n"
        "from ..http import api\n"
        "from . import app\n"
    )
    found = imports_in(source, "probe.py", "framework.runtime.probe", is_package=False)
    imported = {(i.line, i.imported) for i in found}

    assert imported == {
        (2, "framework.store.base"),
        (3, "framework.resources"),
        (3, "framework"),
        (5, "framework.testing.faults"),
        (7, "framework.codegen.render"),
        (8, "framework.http.api"),
        (9, "framework.runtime.app"),
    }


def test_the_base_modules_import_only_errors() -> None:
    base = set(LAYERS[1])
    found = [
        f"{i.file}:{i.line}: {i.imported}"
        for i in all_imports()
        if room_of(i.importer) in base and i.imported != "framework.errors"
    ]

    assert found == []


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in fw's modules, by dotted name."""
    classes: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages([str(PACKAGE)], "framework."):
        if info.name == "framework.__main__":  # importing it runs the CLI
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
            ):
                classes[f"{info.name}.{name}"] = value
    return classes


def test_every_error_lives_in_errors_and_is_an_fw_error() -> None:
    classes = exception_classes()
    outside = {name for name in classes if not name.startswith("framework.errors.")}
    not_fw = {
        name
        for name, cls in classes.items()
        if name.startswith("framework.errors.") and not issubclass(cls, framework.errors.FwError)
    }

    assert outside == set(OUTSIDE_ERRORS)
    assert not_fw == set(NOT_FW_ERRORS)


def test_errors_that_moved_still_import_from_their_public_places() -> None:
    from framework import AppNotFoundError as from_root
    from framework.testing import InjectedFailure

    assert from_root is framework.errors.AppNotFoundError
    assert InjectedFailure is framework.errors.InjectedFailure


ALLOWED_BACK_EDGES: dict[tuple[str, str], str] = {
    ("framework.runtime.definition", "framework.runtime.context"): (
        "type-only: @workflow's signatures name WorkflowContext, whose run_step and parallel "
        "name StepDefinition and Branch"
    ),
    ("framework.runtime.handles", "framework.runtime.app"): (
        "type-only: a handle holds the App that made it"
    ),
    ("framework.runtime.handles", "framework.runtime.sync"): (
        "in a function: .sync wraps a handle in the blocking facade"
    ),
    ("framework.client.handles", "framework.client.sync"): (
        "in a function: .sync wraps a remote handle in the blocking facade, as runtime's do"
    ),
}
"""The imports allowed to point back up fw's module graph, and why; without them the graph
has no cycle, and each of them closes one. A module that imports another (under
``TYPE_CHECKING`` or inside a function too) must not be imported back, directly or through
others: one concept per module, each readable without those above it."""


def import_graph() -> dict[str, set[str]]:
    """Module -> the fw modules it imports (its own package's ``__init__`` left out)."""
    graph: dict[str, set[str]] = {}
    for i in all_imports():
        if i.importer != i.imported and i.imported != "framework":
            graph.setdefault(i.importer, set()).add(i.imported)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` (its modules in import order, the first repeated at the end),
    or [] when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if cycle := visit(imported):
                return cycle
        path.pop()
        done.add(module)
        return []

    for module in sorted(graph):
        if cycle := visit(module):
            return cycle
    return []


def without(graph: dict[str, set[str]], edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    removed = set(edges)
    return {m: {i for i in imported if (m, i) not in removed} for m, imported in graph.items()}


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for imported in graph.get(todo.pop(), ()):
            if imported == goal:
                return True
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return False


def test_no_import_cycle_but_the_allowed_back_edges() -> None:
    cycle = find_cycle(without(import_graph(), ALLOWED_BACK_EDGES))

    assert cycle == [], "an import cycle: " + " -> ".join(cycle)


def test_every_allowed_back_edge_exists_and_closes_a_cycle() -> None:
    graph = import_graph()
    rest = without(graph, ALLOWED_BACK_EDGES)
    gone = [edge for edge in ALLOWED_BACK_EDGES if edge[1] not in graph.get(edge[0], set())]
    needless = [(a, b) for a, b in ALLOWED_BACK_EDGES if not reaches(rest, b, a)]

    assert gone == [], "no longer imported: remove from ALLOWED_BACK_EDGES"
    assert needless == [], "closes no cycle: remove from ALLOWED_BACK_EDGES"


def test_the_cycle_check_finds_a_cycle_through_a_type_only_import() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from framework.b import B\n"
    graph = {
        "framework.a": {i.imported for i in imports_in(source, "a.py", "framework.a", False)},
        "framework.b": {"framework.c"},
        "framework.c": {"framework.a", "framework.d"},
    }

    assert find_cycle(graph) == ["framework.a", "framework.b", "framework.c", "framework.a"]
    assert find_cycle(without(graph, [("framework.c", "framework.a")])) == []
    assert reaches(graph, "framework.b", "framework.a")
