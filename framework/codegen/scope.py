"""The top-level names of a module, read with libcst: what each one is bound to.

Imports and definitions inside top-level ``if`` / ``try`` / ``with`` blocks count (the usual
``if TYPE_CHECKING:`` imports); anything inside functions or classes does not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst

FRAMEWORK = "framework"


@dataclass(frozen=True)
class ImportedName:
    """``from module import name``; ``module`` is absolute, or None when a relative import
    climbs above the app (``problem`` says why)."""

    module: str | None
    name: str
    node: cst.CSTNode
    problem: str | None = None


@dataclass(frozen=True)
class ImportedModule:
    """``import a.b as m``: the local name is the module ``a.b`` itself."""

    module: str


@dataclass
class PlainImports:
    """``import a`` and ``import a.b``: the local name ``a``, and every module imported under it."""

    modules: set[str] = field(default_factory=set[str])


@dataclass(frozen=True)
class Definition:
    """A class, function, assignment or type alias at the top of the module."""

    node: cst.CSTNode


Binding = ImportedName | ImportedModule | PlainImports | Definition


@dataclass
class ModuleScope:
    """The top-level bindings of one module, and its star imports."""

    module: str
    bindings: dict[str, Binding] = field(default_factory=dict[str, Binding])
    star_imports: list[str] = field(default_factory=list[str])

    def framework_symbol(self, expr: cst.BaseExpression) -> str | None:
        """The name of the ``framework`` export ``expr`` refers to (``workflow`` for
        ``@workflow``, ``@fw.workflow``, ``@framework.workflow``), or None."""
        if isinstance(expr, cst.Name):
            binding = self.bindings.get(expr.value)
            if isinstance(binding, ImportedName) and _in_framework(binding.module):
                return binding.name
            if binding is None and any(_in_framework(m) for m in self.star_imports):
                return expr.value
            return None
        if isinstance(expr, cst.Attribute):
            owner = dotted_name(expr.value)
            if owner is None:
                return None
            module = self.module_of(owner)
            return expr.attr.value if _in_framework(module) else None
        return None

    def module_of(self, dotted: str) -> str | None:
        """The module a dotted local name (``fw``, ``a.b``) stands for, if it is one."""
        root, _, rest = dotted.partition(".")
        binding = self.bindings.get(root)
        if isinstance(binding, ImportedModule):
            return f"{binding.module}.{rest}" if rest else binding.module
        if isinstance(binding, PlainImports) and (not rest or dotted in binding.modules):
            return dotted
        return None


def collect_scope(module: cst.Module, module_name: str) -> ModuleScope:
    """The top-level bindings of ``module``, whose dotted import path is ``module_name``."""
    scope = ModuleScope(module_name)
    for statement in _top_level_statements(module.body):
        _bind(scope, statement)
    return scope


def dotted_name(expr: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        owner = dotted_name(expr.value)
        return None if owner is None else f"{owner}.{expr.attr.value}"
    return None


def resolve_relative(module_name: str, level: int, target: str | None) -> str | None:
    """The absolute module of ``from <level dots><target> import ...`` in ``module_name``."""
    parts = module_name.split(".")[:-1]
    if level - 1 >= len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _in_framework(module: str | None) -> bool:
    return module is not None and (module == FRAMEWORK or module.startswith(FRAMEWORK + "."))


def _top_level_statements(
    body: Sequence[cst.BaseStatement | cst.BaseSmallStatement],
) -> Iterator[cst.CSTNode]:
    for statement in body:
        if isinstance(statement, cst.SimpleStatementLine | cst.SimpleStatementSuite):
            yield from statement.body
        elif isinstance(statement, cst.If):
            yield from _if_statements(statement)
        elif isinstance(statement, cst.Try | cst.TryStar):
            yield from _try_statements(statement)
        elif isinstance(statement, cst.With):
            yield from _top_level_statements(statement.body.body)
        else:
            yield statement


def _if_statements(statement: cst.If | cst.Else) -> Iterator[cst.CSTNode]:
    yield from _top_level_statements(statement.body.body)
    if isinstance(statement, cst.If) and statement.orelse is not None:
        yield from _if_statements(statement.orelse)


def _try_statements(statement: cst.Try | cst.TryStar) -> Iterator[cst.CSTNode]:
    yield from _top_level_statements(statement.body.body)
    for handler in statement.handlers:
        yield from _top_level_statements(handler.body.body)
    for block in (statement.orelse, statement.finalbody):
        if block is not None:
            yield from _top_level_statements(block.body.body)


def _bind(scope: ModuleScope, node: cst.CSTNode) -> None:
    if isinstance(node, cst.Import):
        _bind_import(scope, node)
    elif isinstance(node, cst.ImportFrom):
        _bind_import_from(scope, node)
    elif isinstance(node, cst.ClassDef | cst.FunctionDef | cst.TypeAlias):
        scope.bindings[node.name.value] = Definition(node)
    elif isinstance(node, cst.AnnAssign):
        _bind_target(scope, node.target, node)
    elif isinstance(node, cst.Assign):
        for target in node.targets:
            _bind_target(scope, target.target, node)


def _bind_target(scope: ModuleScope, target: cst.BaseExpression, node: cst.CSTNode) -> None:
    if isinstance(target, cst.Name):
        scope.bindings[target.value] = Definition(node)
    elif isinstance(target, cst.Tuple | cst.List):
        for element in target.elements:
            _bind_target(scope, element.value, node)


def _bind_import(scope: ModuleScope, node: cst.Import) -> None:
    for alias in node.names:
        module = dotted_name(alias.name)
        if module is None:
            continue
        if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
            scope.bindings[alias.asname.name.value] = ImportedModule(module)
            continue
        root = module.split(".")[0]
        binding = scope.bindings.get(root)
        if not isinstance(binding, PlainImports):
            binding = scope.bindings[root] = PlainImports()
        binding.modules.add(module)


def _bind_import_from(scope: ModuleScope, node: cst.ImportFrom) -> None:
    target = None if node.module is None else dotted_name(node.module)
    level = len(node.relative)
    problem = None
    if level:
        module = resolve_relative(scope.module, level, target)
        if module is None:
            problem = f"the relative import climbs above the app's package {scope.module!r}"
    else:
        module = target
    if module == "__future__":
        return
    if isinstance(node.names, cst.ImportStar):
        if module is not None:
            scope.star_imports.append(module)
        return
    for alias in node.names:
        name = dotted_name(alias.name)
        if name is None:
            continue
        local = name
        if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
            local = alias.asname.name.value
        scope.bindings[local] = ImportedName(module, name, node, problem)
