"""``fw check``: lints across the app, using what codegen knows about its workflows.

- ``workflow_unknown_target`` (error): ``workflows.get("x")`` (or ``get_dynamic``),
  ``env.X_WORKFLOW``, ``ctx.spawn("x")``, ``branch("x")`` or ``workflow_status("x", ...)``
  naming a workflow the app does not declare; and ``inst.send_event("t", ...)`` sending an
  event type that ``inst``'s workflow never waits for, when ``inst`` was assigned from
  ``workflows.get("x")`` / ``env.X_WORKFLOW`` (``.create``, ``.get``) or ``ctx.spawn`` in the
  same file and every wait of that workflow names a literal type.
- ``workflow_unused`` (info): a workflow nothing in the app starts (no ``get``, ``env``
  binding, binding constant, ``spawn`` or ``branch`` names it), unless its ``[[workflows]]``
  table of fw.toml says ``external = true`` (started from outside the code checked).

Every ``.py`` file of the app is read with libcst (not imported), except ``_generated/``, and
so is every ``.py`` file under the folders ``[check] paths`` of fw.toml lists (relative to the
app folder, like ``["../web"]``: the code that starts workflows often lives beside the app).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from framework.app_root import CONFIG_FILE
from framework.codegen.discover import GENERATED_DIR, discover_python_files, walk_app
from framework.codegen.model import Problem, WorkflowSpec, sort_problems
from framework.codegen.parse import syntax_problem
from framework.codegen.run import scan_app
from framework.codegen.scope import ImportedName, ModuleScope, collect_scope

ReferenceKind = Literal["get", "env", "spawn", "branch", "constant", "status", "event"]
BINDING_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*_WORKFLOW$")
_MARKERS = (b"get", b"spawn", b"branch", b"_WORKFLOW", b"workflow_status", b"send_event")
_NAMED_BY = {
    "get": "workflows.get",
    "spawn": "spawn",
    "branch": "branch",
    "status": "workflow_status",
}
_STATUS_FUNCTIONS = ("workflow_status", "workflow_status_blocking")
_INSTANCE_METHODS = ("create", "get")


@dataclass(frozen=True)
class Reference:
    """A place in the app's code that names a workflow (by name or by binding); for an event
    sent, ``target`` is the workflow of the instance (a name, or a binding when ``by_binding``)
    and ``event_type`` the type sent."""

    kind: ReferenceKind
    target: str
    node: cst.CSTNode
    event_type: str | None = None
    by_binding: bool = False


@dataclass
class LintResult:
    """Findings of ``fw check`` (codegen's problems included) and the workflows they are about."""

    root: Path
    workflows: list[WorkflowSpec]
    findings: list[Problem] = field(default_factory=list[Problem])
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not any(f.is_error for f in self.findings)

    def add_findings(self, findings: Iterable[Problem]) -> None:
        """Add findings made outside the lint (fw.toml's unknown keys), in reading order."""
        self.findings = sort_problems([*self.findings, *findings])


def lint_app(root: Path) -> LintResult:
    """Check every reference to a workflow in the app against the declared workflows."""
    root = root.resolve()
    scan = scan_app(root)
    result = LintResult(root, scan.workflows, list(scan.problems))
    if scan.settings is None:
        return result
    if scan.cache is not None:
        scan.cache.save()
    known = _Known(scan.workflows)
    used: set[str] = set()
    extra, external = _check_settings(root)
    files = discover_python_files(root, scan.settings.exclude)
    for folder in extra:
        files += [f"{folder}/{rel}" for rel in walk_app(root / folder, (), _is_python)]
    for rel in files:
        result.files_checked += 1
        found = _lint_file(root, rel, known, used)
        result.findings += found
    result.findings += _unused([w for w in scan.workflows if w.name not in external], used)
    result.findings = sort_problems(result.findings)
    return result


def find_references(module: cst.Module, scope: ModuleScope) -> list[Reference]:
    """The workflow references of one parsed module."""
    collector = _ReferenceCollector(scope)
    module.visit(collector)
    return collector.references


def _is_python(name: str) -> bool:
    return name.endswith(".py")


@dataclass(frozen=True)
class _Known:
    """The declared workflows, as the lint looks them up."""

    workflows: Sequence[WorkflowSpec]

    @property
    def names(self) -> set[str]:
        return {w.name for w in self.workflows}

    @property
    def bindings(self) -> set[str]:
        return {w.binding for w in self.workflows}

    def workflow(self, reference: Reference) -> WorkflowSpec | None:
        for w in self.workflows:
            if (w.binding if reference.by_binding else w.name) == reference.target:
                return w
        return None


def _check_settings(root: Path) -> tuple[list[str], set[str]]:
    """``[check] paths`` (existing folders, relative to the app) and the workflows whose
    ``[[workflows]]`` table says ``external = true``."""
    try:
        data: dict[str, Any] = tomllib.loads((root / CONFIG_FILE).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return [], set()
    section: Any = data.get("check")
    paths: Any = cast(dict[str, Any], section).get("paths") if isinstance(section, dict) else None
    items: list[Any] = cast(Any, paths) if isinstance(paths, list) else []
    folders = [
        path.rstrip("/") for path in items if isinstance(path, str) and (root / path).is_dir()
    ]
    tables: Any = data.get("workflows")
    rows: list[Any] = cast(Any, tables) if isinstance(tables, list) else []
    external: set[str] = set()
    for table in rows:
        if isinstance(table, dict):
            entry = cast(dict[str, Any], table)
            if entry.get("external") is True and isinstance(entry.get("name"), str):
                external.add(entry["name"])
    return folders, external


def _lint_file(root: Path, rel: str, known: _Known, used: set[str]) -> list[Problem]:
    try:
        source = (root / rel).read_bytes()
    except OSError as exc:
        return [Problem(rel, None, None, f"cannot read: {exc.strerror}", "unreadable")]
    if not any(marker in source for marker in _MARKERS):
        return []
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return [syntax_problem(source, rel, exc)]
    scope = collect_scope(module, rel.removesuffix(".py").replace("/", "."))
    references = find_references(module, scope)
    used.update(r.target for r in references if r.kind != "event")
    names, bindings = known.names, known.bindings
    unknown = [
        (r, message)
        for r in references
        if (message := _problem_of(r, known, names, bindings)) is not None
    ]
    if not unknown:
        return []
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    problems: list[Problem] = []
    for reference, message in unknown:
        start = positions[reference.node].start
        code = "workflow_unknown_target"
        problems.append(Problem(rel, start.line, start.column + 1, message, code))
    return problems


def _problem_of(
    reference: Reference, known: _Known, names: set[str], bindings: set[str]
) -> str | None:
    """What is wrong with a reference, or None when it names what the app declares."""
    if reference.kind == "event":
        return _event_problem(reference, known)
    if _known(reference, names, bindings):
        return None
    return _unknown_message(reference, names, bindings)


def _event_problem(reference: Reference, known: _Known) -> str | None:
    workflow = known.workflow(reference)
    event_type = reference.event_type or ""
    if workflow is None or workflow.open_events:
        return None
    types = [e.type for e in workflow.events]
    if event_type in types:
        return None
    what = (
        f"send_event({event_type!r}) to an instance of {workflow.name!r}, which never waits "
        "for that type"
    )
    close = difflib.get_close_matches(event_type, types, n=3, cutoff=0.6)
    if close:
        return f"{what}; did you mean {' or '.join(repr(c) for c in close)}?"
    if not types:
        return f"{what}: it waits for no event"
    return f"{what}; it waits for {', '.join(repr(t) for t in types)}"


def _known(reference: Reference, names: set[str], bindings: set[str]) -> bool:
    if reference.kind == "constant":
        return True
    return reference.target in (bindings if reference.kind == "env" else names)


def _unknown_message(reference: Reference, names: set[str], bindings: set[str]) -> str:
    if reference.kind == "env":
        what = f"env.{reference.target} is not a binding of this app"
        choices: Iterable[str] = bindings
    else:
        what = f"{_NAMED_BY[reference.kind]}({reference.target!r}) names no declared workflow"
        choices = names
    close = _close_matches(reference.target, sorted(choices))
    if close:
        return f"{what}; did you mean {' or '.join(repr(c) for c in close)}?"
    if not names:
        return f"{what}; the app declares no workflows yet (run `fw new workflow NAME`)"
    return f"{what}; declared: {', '.join(sorted(choices))}"


def _close_matches(target: str, choices: list[str]) -> list[str]:
    """Close matches, ignoring the ``_WORKFLOW`` every binding ends with."""
    stems = {choice.removesuffix("_WORKFLOW"): choice for choice in choices}
    stem = target.removesuffix("_WORKFLOW")
    close = difflib.get_close_matches(stem, list(stems), n=3, cutoff=0.6)
    return [stems[match] for match in close]


def _unused(workflows: Sequence[WorkflowSpec], used: set[str]) -> list[Problem]:
    return [
        Problem(
            w.file,
            w.line,
            None,
            f"workflow {w.name!r} is never started in this app (no workflows.get, "
            f"env.{w.binding}, spawn or branch names it)",
            "workflow_unused",
            "info",
        )
        for w in workflows
        if w.name not in used and w.binding not in used
    ]


class _ReferenceCollector(cst.CSTVisitor):
    def __init__(self, scope: ModuleScope) -> None:
        self.scope = scope
        self.references: list[Reference] = []
        self.instances: dict[str, tuple[str, bool]] = {}
        """Variable -> (workflow name or binding, by binding) of the instance assigned to it."""

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1 or not isinstance(node.targets[0].target, cst.Name):
            return
        value = node.value.expression if isinstance(node.value, cst.Await) else node.value
        found = self._instance_of(value)
        if found is not None:
            self.instances[node.targets[0].target.value] = found

    def _instance_of(self, value: cst.BaseExpression) -> tuple[str, bool] | None:
        """The workflow of ``workflows.get("x").create(...)``, ``env.X.get(...)`` or
        ``ctx.spawn(workflows.get("x"), ...)``."""
        if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Attribute):
            return None
        func = value.func
        if func.attr.value == "spawn" and value.args:
            return self._handle_of(value.args[0].value)
        if func.attr.value in _INSTANCE_METHODS:
            return self._handle_of(func.value)
        return None

    def _handle_of(self, expr: cst.BaseExpression) -> tuple[str, bool] | None:
        if isinstance(expr, cst.Attribute) and self._generated_owner(expr.value, "env"):
            return expr.attr.value, True
        if (
            isinstance(expr, cst.Call)
            and isinstance(expr.func, cst.Attribute)
            and expr.func.attr.value == "get"
            and self._generated_owner(expr.func.value, "workflows")
            and expr.args
        ):
            literal = _literal(expr.args[0].value)
            return None if literal is None else (literal, False)
        return None

    def visit_Call(self, node: cst.Call) -> None:
        self._event_sent(node)
        kind = self._call_kind(node.func)
        if kind is None:
            return
        keyword = "workflow" if kind == "branch" else "name"
        argument = _first_argument(node.args, keyword)
        if argument is None:
            return
        literal = _literal(argument.value)
        if literal is not None:
            self.references.append(Reference(kind, literal, argument.value))

    def _event_sent(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "send_event"):
            return
        if not isinstance(func.value, cst.Name) or func.value.value not in self.instances:
            return
        argument = _first_argument(node.args, "type")
        event_type = None if argument is None else _literal(argument.value)
        if argument is None or event_type is None:
            return
        target, by_binding = self.instances[func.value.value]
        self.references.append(
            Reference("event", target, argument.value, event_type, by_binding)
        )

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if BINDING_PATTERN.match(node.attr.value) and self._generated_owner(node.value, "env"):
            self.references.append(Reference("env", node.attr.value, node))

    def visit_Name(self, node: cst.Name) -> None:
        if BINDING_PATTERN.match(node.value):
            self.references.append(Reference("constant", node.value, node))

    def _call_kind(self, func: cst.BaseExpression) -> ReferenceKind | None:
        if isinstance(func, cst.Attribute):
            attr, owner = func.attr.value, _last_name(func.value)
            if attr in ("get", "get_dynamic") and self._generated_owner(func.value, "workflows"):
                return "get"
            if attr == "spawn" and owner is not None and "ctx" in owner.lower():
                return "spawn"
        if self.scope.framework_symbol(func) == "branch":
            return "branch"
        if self.scope.framework_symbol(func) in _STATUS_FUNCTIONS:
            return "status"
        if isinstance(func, cst.Name) and func.value in ("spawn", "branch"):
            unbound = func.value not in self.scope.bindings
            return ("spawn" if func.value == "spawn" else "branch") if unbound else None
        return None

    def _generated_owner(self, owner: cst.BaseExpression, name: str) -> bool:
        """Whether ``owner`` can be the generated ``workflows`` / ``env``: so named, and not
        bound at module level to something else (``ctx.env`` and parameters count)."""
        if _last_name(owner) != name:
            return False
        if not isinstance(owner, cst.Name):
            return True
        binding = self.scope.bindings.get(name)
        return binding is None or (
            isinstance(binding, ImportedName)
            and binding.module is not None
            and GENERATED_DIR in binding.module.split(".")
        )


def _first_argument(args: Sequence[cst.Arg], keyword: str) -> cst.Arg | None:
    for arg in args:
        if arg.keyword is None and arg.star == "":
            return arg
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg
    return None


def _literal(value: cst.BaseExpression) -> str | None:
    if isinstance(value, cst.SimpleString | cst.ConcatenatedString):
        literal = value.evaluated_value
        return literal if isinstance(literal, str) else None
    return None


def _last_name(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    return None
