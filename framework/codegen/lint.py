"""``fw check``: lints across the app, using what codegen knows about its workflows.

- ``workflow_unknown_target`` (error): ``workflows.get("x")``, ``env.X_WORKFLOW``,
  ``ctx.spawn("x")`` or ``branch("x")`` naming a workflow the app does not declare.
- ``workflow_unused`` (info): a workflow nothing in the app starts (no ``get``, ``env``
  binding, binding constant, ``spawn`` or ``branch`` names it).

Every ``.py`` file of the app is read with libcst (not imported), except ``_generated/``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from framework.codegen.discover import GENERATED_DIR, discover_python_files
from framework.codegen.model import Problem, WorkflowSpec, sort_problems
from framework.codegen.parse import syntax_problem
from framework.codegen.run import scan_app
from framework.codegen.scope import ImportedName, ModuleScope, collect_scope

ReferenceKind = Literal["get", "env", "spawn", "branch", "constant"]
BINDING_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*_WORKFLOW$")
_MARKERS = (b"get", b"spawn", b"branch", b"_WORKFLOW")
_NAMED_BY = {"get": "workflows.get", "spawn": "spawn", "branch": "branch"}


@dataclass(frozen=True)
class Reference:
    """A place in the app's code that names a workflow (by name or by binding)."""

    kind: ReferenceKind
    target: str
    node: cst.CSTNode


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


def lint_app(root: Path) -> LintResult:
    """Check every reference to a workflow in the app against the declared workflows."""
    root = root.resolve()
    scan = scan_app(root)
    result = LintResult(root, scan.workflows, list(scan.problems))
    if scan.settings is None:
        return result
    if scan.cache is not None:
        scan.cache.save()
    names = {w.name for w in scan.workflows}
    bindings = {w.binding for w in scan.workflows}
    used: set[str] = set()
    for rel in discover_python_files(root, scan.settings.exclude):
        result.files_checked += 1
        found = _lint_file(root, rel, names, bindings, used)
        result.findings += found
    result.findings += _unused(scan.workflows, used)
    result.findings = sort_problems(result.findings)
    return result


def find_references(module: cst.Module, scope: ModuleScope) -> list[Reference]:
    """The workflow references of one parsed module."""
    collector = _ReferenceCollector(scope)
    module.visit(collector)
    return collector.references


def _lint_file(
    root: Path, rel: str, names: set[str], bindings: set[str], used: set[str]
) -> list[Problem]:
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
    used.update(r.target for r in references)
    unknown = [r for r in references if not _known(r, names, bindings)]
    if not unknown:
        return []
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    problems: list[Problem] = []
    for reference in unknown:
        start = positions[reference.node].start
        message = _unknown_message(reference, names, bindings)
        code = "workflow_unknown_target"
        problems.append(Problem(rel, start.line, start.column + 1, message, code))
    return problems


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

    def visit_Call(self, node: cst.Call) -> None:
        kind = self._call_kind(node.func)
        if kind is None:
            return
        keyword = "workflow" if kind == "branch" else "name"
        argument = _first_argument(node.args, keyword)
        if argument is None:
            return
        value = argument.value
        if isinstance(value, cst.SimpleString | cst.ConcatenatedString):
            literal = value.evaluated_value
            if isinstance(literal, str):
                self.references.append(Reference(kind, literal, value))

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


def _last_name(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    return None
