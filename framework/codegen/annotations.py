"""Turning a workflow's params / output annotation into an expression generated code can use.

Every name the annotation uses is resolved in the workflow's module: a top-level definition is
imported from the workflow module, an imported name is imported again from where it came from,
a builtin needs nothing. Each import gets an alias unique to the workflow
(``_order_pipeline__OrderParams``), and the expression is rewritten with libcst to use it, so two
workflows each with a ``Params`` class never collide. String annotations are parsed and
rewritten too; ``Annotated[T, ...]`` becomes ``T``; the strings inside ``Literal[...]`` stay.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

import libcst as cst

from framework.codegen.model import TypeImport, TypeRef
from framework.codegen.scope import (
    Definition,
    ImportedModule,
    ImportedName,
    ModuleScope,
    PlainImports,
    dotted_name,
)

BUILTIN_NAMES = frozenset(vars(builtins))
TYPING_MODULES = frozenset({"typing", "typing_extensions"})
_EMPTY_MODULE = cst.Module(body=[])
_LITERAL_LEAVES = (cst.Integer, cst.Float, cst.Imaginary, cst.UnaryOperation, cst.Ellipsis)


@dataclass(frozen=True)
class AnnotationProblem:
    """Why an annotation cannot be used; ``node`` is where, in the module's own tree."""

    node: cst.CSTNode
    message: str
    code: str


@dataclass
class AnnotationRewriter:
    """Rewrites the annotations of one workflow; its imports are shared by params and output."""

    scope: ModuleScope
    alias_prefix: str
    owner: str
    imports: dict[tuple[str, str | None], TypeImport] = field(
        default_factory=dict[tuple[str, str | None], TypeImport]
    )
    problems: list[AnnotationProblem] = field(default_factory=list[AnnotationProblem])
    _used: set[TypeImport] = field(default_factory=set[TypeImport])

    def type_ref(
        self, annotation: cst.BaseExpression, anchor: cst.CSTNode | None = None
    ) -> TypeRef:
        """The rewritten ``annotation`` and the imports it needs (problems are collected)."""
        self._used = set()
        rewritten = self._rewrite(annotation, anchor, in_literal=False)
        imports = tuple(sorted(self._used, key=lambda i: i.sort_key))
        return TypeRef(render_expression(rewritten), imports)

    def _rewrite(
        self, node: cst.BaseExpression, anchor: cst.CSTNode | None, *, in_literal: bool
    ) -> cst.BaseExpression:
        where = anchor or node
        if isinstance(node, cst.Name | cst.Attribute):
            return self._reference(node, where)
        if isinstance(node, cst.Subscript):
            return self._subscript(node, anchor, in_literal=in_literal)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
            return node.with_changes(
                left=self._rewrite(node.left, anchor, in_literal=in_literal),
                right=self._rewrite(node.right, anchor, in_literal=in_literal),
            )
        if isinstance(node, cst.List | cst.Tuple):
            elements = [
                e.with_changes(value=self._rewrite(e.value, anchor, in_literal=in_literal))
                for e in node.elements
            ]
            return node.with_changes(elements=elements)
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            return node if in_literal else self._forward_reference(node, where)
        if isinstance(node, _LITERAL_LEAVES):
            return node
        code = _EMPTY_MODULE.code_for_node(node)
        self._problem(where, f"{code!r} cannot be used in a type here", "invalid_annotation")
        return node

    def _subscript(
        self, node: cst.Subscript, anchor: cst.CSTNode | None, *, in_literal: bool
    ) -> cst.BaseExpression:
        special = self._typing_form(node.value)
        values: list[cst.BaseExpression] = []
        for element in node.slice:
            if not isinstance(element.slice, cst.Index):
                self._problem(anchor or element, "a slice is not a type", "invalid_annotation")
                return node
            values.append(element.slice.value)
        if special == "Annotated" and values:
            return self._rewrite(values[0], anchor, in_literal=in_literal)
        inner_literal = in_literal or special == "Literal"
        elements = [
            element.with_changes(
                slice=element.slice.with_changes(
                    value=self._rewrite(value, anchor, in_literal=inner_literal)
                )
            )
            for element, value in zip(node.slice, values, strict=True)
        ]
        value = self._rewrite(node.value, anchor, in_literal=in_literal)
        return node.with_changes(value=value, slice=elements)

    def _forward_reference(
        self, node: cst.SimpleString | cst.ConcatenatedString, where: cst.CSTNode
    ) -> cst.BaseExpression:
        text = node.evaluated_value
        if not isinstance(text, str):
            self._problem(where, "a string annotation must be a plain string", "invalid_annotation")
            return node
        try:
            parsed = cst.parse_expression(text.strip())
        except cst.ParserSyntaxError:
            message = f"the string annotation {text!r} is not a Python expression"
            self._problem(where, message, "invalid_annotation")
            return node
        return self._rewrite(parsed, where, in_literal=False)

    def _typing_form(self, expr: cst.BaseExpression) -> str | None:
        """``Literal`` or ``Annotated`` when ``expr`` names that form of typing, else None."""
        if isinstance(expr, cst.Name):
            binding = self.scope.bindings.get(expr.value)
            if isinstance(binding, ImportedName) and binding.module in TYPING_MODULES:
                return binding.name
            return None
        if isinstance(expr, cst.Attribute):
            owner = dotted_name(expr.value)
            module = None if owner is None else self.scope.module_of(owner)
            return expr.attr.value if module in TYPING_MODULES else None
        return None

    def _reference(self, node: cst.Name | cst.Attribute, where: cst.CSTNode) -> cst.BaseExpression:
        dotted = dotted_name(node)
        if dotted is None:
            code = _EMPTY_MODULE.code_for_node(node)
            self._problem(where, f"{code!r} is not a type name", "invalid_annotation")
            return node
        parts = dotted.split(".")
        binding = self.scope.bindings.get(parts[0])
        if isinstance(binding, Definition):
            return _chain(self._alias(self.scope.module, parts[0], parts[0]), parts[1:])
        if isinstance(binding, ImportedName):
            if binding.module is None:
                self._problem(binding.node, binding.problem or "bad import", "unresolved_type")
                return node
            return _chain(self._alias(binding.module, binding.name, parts[0]), parts[1:])
        if isinstance(binding, ImportedModule):
            return _chain(self._alias(binding.module, None, parts[0]), parts[1:])
        if isinstance(binding, PlainImports):
            module = _longest_module(binding.modules, parts)
            rest = parts[module.count(".") + 1 :]
            return _chain(self._alias(module, None, module.replace(".", "_")), rest)
        if parts[0] in BUILTIN_NAMES:
            return node
        self._problem(where, self._unresolved(parts[0]), "unresolved_type")
        return node

    def _unresolved(self, name: str) -> str:
        message = (
            f"cannot resolve {name!r} in the types of {self.owner}: define it or import it "
            "at the top level of this file"
        )
        if self.scope.star_imports:
            message += " (names from `import *` cannot be followed; import it by name)"
        return message

    def _alias(self, module: str, name: str | None, local: str) -> str:
        key = (module, name)
        found = self.imports.get(key)
        if found is None:
            taken = {i.alias for i in self.imports.values()}
            alias = base = f"{self.alias_prefix}{local}"
            counter = 2
            while alias in taken:
                alias, counter = f"{base}_{counter}", counter + 1
            found = self.imports[key] = TypeImport(module, name, alias)
        self._used.add(found)
        return found.alias

    def _problem(self, node: cst.CSTNode, message: str, code: str) -> None:
        self.problems.append(AnnotationProblem(node, message, code))


def render_expression(node: cst.BaseExpression) -> str:
    """The expression's code on one line, normalized (comments and line breaks dropped)."""
    code = _EMPTY_MODULE.code_for_node(node).strip()
    try:
        return ast.unparse(ast.parse(code, mode="eval"))
    except SyntaxError:
        return " ".join(code.split())


def _chain(alias: str, attributes: list[str]) -> cst.BaseExpression:
    node: cst.BaseExpression = cst.Name(alias)
    for attribute in attributes:
        node = cst.Attribute(value=node, attr=cst.Name(attribute))
    return node


def _longest_module(modules: set[str], parts: list[str]) -> str:
    """The longest imported module that prefixes ``parts`` (``a.b`` for ``a.b.Item``)."""
    for length in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:length])
        if candidate in modules:
            return candidate
    return parts[0]
