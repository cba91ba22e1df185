"""Reading one ``*_workflow.py`` file with libcst, without importing it.

A workflow is a top-level ``async def`` decorated with ``@workflow`` / ``@workflow(...)``
(function form), or a top-level class whose bases include ``WorkflowEntrypoint[P, O]``
(class form). Its params type is the argument of ``WorkflowContext[P]`` on the first
parameter (or ``P``); its output is the return annotation (or ``O``).
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from framework.codegen.annotations import TYPING_MODULES, AnnotationRewriter
from framework.codegen.concurrency import read_concurrency
from framework.codegen.model import ANY, EventSpec, FileScan, Problem, TypeRef, WorkflowSpec
from framework.codegen.scope import ImportedName, ModuleScope, collect_scope, dotted_name
from framework.naming import (
    binding_for,
    class_name_for,
    identifier_for,
    name_from_file,
    name_problem,
)

WORKFLOW = "workflow"
ENTRYPOINT = "WorkflowEntrypoint"
CONTEXT = "WorkflowContext"
WAIT_FOR_EVENT = "wait_for_event"


@dataclass(frozen=True)
class _Candidate:
    """A top-level statement that declares a workflow, and how."""

    index: int
    node: cst.FunctionDef | cst.ClassDef
    decorator: cst.Decorator | None


class _Positions:
    """Where nodes are, computed only when a problem needs it (it walks the whole tree)."""

    def __init__(self, module: cst.Module) -> None:
        self._module = module
        self._ranges: dict[cst.CSTNode, CodeRange] | None = None

    def of(self, node: cst.CSTNode) -> tuple[int | None, int | None]:
        if self._ranges is None:
            wrapper = MetadataWrapper(self._module, unsafe_skip_copy=True)
            self._ranges = dict(wrapper.resolve(PositionProvider))
        found = self._ranges.get(node)
        return (None, None) if found is None else (found.start.line, found.start.column + 1)


class _FileReader:
    """Collects the workflow and the problems of one file."""

    def __init__(self, module: cst.Module, file: str, module_name: str) -> None:
        self.module = module
        self.file = file
        self.module_name = module_name
        self.scope: ModuleScope = collect_scope(module, module_name)
        self.positions = _Positions(module)
        self.problems: list[Problem] = []

    def problem(self, node: cst.CSTNode | None, message: str, code: str) -> None:
        line, col = (None, None) if node is None else self.positions.of(node)
        self.problems.append(Problem(self.file, line, col, message, code))

    def scan(self) -> WorkflowSpec | None:
        candidates = self._candidates()
        if not candidates:
            self.problems.append(Problem(self.file, 1, 1, _NO_WORKFLOW, "no_workflow"))
            return None
        if len(candidates) > 1:
            self._too_many(candidates)
            return None
        return self._workflow(candidates[0])

    def _candidates(self) -> list[_Candidate]:
        found: list[_Candidate] = []
        for index, statement in enumerate(self.module.body):
            if not isinstance(statement, cst.FunctionDef | cst.ClassDef):
                continue
            decorator = self._workflow_decorator(statement.decorators)
            if decorator is not None or (
                isinstance(statement, cst.ClassDef) and self._entrypoint_base(statement)
            ):
                found.append(_Candidate(index, statement, decorator))
        return found

    def _workflow_decorator(self, decorators: Sequence[cst.Decorator]) -> cst.Decorator | None:
        for decorator in decorators:
            target = decorator.decorator
            if isinstance(target, cst.Call):
                target = target.func
            if self.scope.framework_symbol(target) == WORKFLOW:
                return decorator
        return None

    def _entrypoint_base(self, node: cst.ClassDef) -> cst.Arg | None:
        for base in node.bases:
            value = base.value
            if isinstance(value, cst.Subscript):
                value = value.value
            if _names(self.scope, value, ENTRYPOINT):
                return base
        return None

    def _too_many(self, candidates: list[_Candidate]) -> None:
        lines = [statement_line(self.module, c.index) for c in candidates]
        listing = ", ".join(
            f"{c.node.name.value} (line {n})" for c, n in zip(candidates, lines, strict=True)
        )
        for line in lines:
            message = (
                f"this file declares {len(candidates)} workflows: {listing}; one file declares "
                "one workflow, so move the others into their own *_workflow.py files"
            )
            self.problems.append(Problem(self.file, line, 1, message, "multiple_workflows"))

    def _workflow(self, candidate: _Candidate) -> WorkflowSpec | None:
        name = self._name(candidate)
        if name is None:
            return None
        rewriter = AnnotationRewriter(
            self.scope, f"_{identifier_for(name)}__", candidate.node.name.value
        )
        if isinstance(candidate.node, cst.FunctionDef):
            types = self._function_types(candidate.node, rewriter)
        else:
            types = self._class_types(candidate.node, candidate.decorator, rewriter)
        for found in rewriter.problems:
            self.problem(found.node, found.message, found.code)
        if types is None or self.problems:
            return None
        params, output = types
        limits = read_concurrency(candidate.decorator, candidate.node)
        for node, message in limits.problems:
            self.problem(node, message, "invalid_concurrency")
        if limits.problems:
            return None
        events, open_events = self._events(rewriter)
        return WorkflowSpec(
            name=name,
            binding=binding_for(name),
            class_name=class_name_for(name),
            module=self.module_name,
            attribute=candidate.node.name.value,
            file=self.file,
            line=statement_line(self.module, candidate.index),
            form="function" if isinstance(candidate.node, cst.FunctionDef) else "class",
            params=params,
            output=output,
            events=events,
            open_events=open_events,
            concurrency=limits.concurrency,
            concurrency_key=limits.concurrency_key,
        )

    def _events(self, rewriter: AnnotationRewriter) -> tuple[tuple[EventSpec, ...], bool]:
        """The event types the file's ``wait_for_event`` calls name, and whether one computes
        its type (then any type may be sent). A type waited for with two models, or a model
        that cannot be written in generated code, gets payload ``Any``."""
        finder = _WaitFinder()
        self.module.visit(finder)
        found: dict[str, EventSpec] = {}
        open_events = False
        for call in finder.calls:
            event_type, model = _keyword(call, "type"), _keyword(call, "model")
            literal = _string(event_type)
            if literal is None or any(arg.star for arg in call.args):
                open_events = True
                continue
            spec = self._event_spec(literal, model, rewriter)
            if found.setdefault(literal, spec) != spec:
                found[literal] = EventSpec(literal)
        return tuple(found[t] for t in sorted(found)), open_events

    def _event_spec(
        self, event_type: str, model: cst.BaseExpression | None, rewriter: AnnotationRewriter
    ) -> EventSpec:
        if model is None or (isinstance(model, cst.Name) and model.value == "None"):
            return EventSpec(event_type)
        before = len(rewriter.problems)
        payload = rewriter.type_ref(model)
        if len(rewriter.problems) > before:
            del rewriter.problems[before:]
            return EventSpec(event_type)
        return EventSpec(event_type, payload, dotted_name(model))

    def _name(self, candidate: _Candidate) -> str | None:
        """The workflow's name: ``@workflow(name="...")``, else derived from the file name."""
        decorator = candidate.decorator
        if decorator is not None and isinstance(decorator.decorator, cst.Call):
            return self._override(decorator.decorator)
        name = name_from_file(self.file.rsplit("/", 1)[-1])
        problem = name_problem(name)
        if problem is not None:
            message = f"{problem} (derived from the file name)"
            self.problems.append(Problem(self.file, None, None, message, "invalid_name"))
            return None
        return name

    def _override(self, call: cst.Call) -> str | None:
        default = name_from_file(self.file.rsplit("/", 1)[-1])
        for arg in call.args:
            if arg.keyword is None:
                message = (
                    '@workflow takes its options by keyword: @workflow(name="...")'
                    if arg.star == ""
                    else "@workflow(**options) cannot be read; pass name=\"...\" as a literal"
                )
                self.problem(arg, message, "non_literal_name")
                return None
            if arg.keyword.value != "name":
                continue
            value = arg.value
            if isinstance(value, cst.Name) and value.value == "None":
                break
            literal = (
                value.evaluated_value
                if isinstance(value, cst.SimpleString | cst.ConcatenatedString)
                else None
            )
            if not isinstance(literal, str):
                message = (
                    "the workflow name must be a string literal (codegen reads it without "
                    'running the file), like @workflow(name="payments")'
                )
                self.problem(value, message, "non_literal_name")
                return None
            problem = name_problem(literal)
            if problem is not None:
                self.problem(value, problem, "invalid_name")
                return None
            return literal
        problem = name_problem(default)
        if problem is not None:
            self.problem(call, f"{problem} (derived from the file name)", "invalid_name")
            return None
        return default

    def _function_types(
        self, node: cst.FunctionDef, rewriter: AnnotationRewriter
    ) -> tuple[TypeRef, TypeRef] | None:
        name = node.name.value
        if node.asynchronous is None:
            message = f"@workflow needs an `async def`; {name} is a plain def"
            self.problem(node.name, message, "not_async")
            return None
        positional = [*node.params.posonly_params, *node.params.params]
        if not positional:
            message = (
                f"{name} takes no context; declare it as "
                f"`async def {name}(ctx: WorkflowContext[Params])`"
            )
            self.problem(node.name, message, "invalid_signature")
            return None
        params = self._context_params(positional[0], name, rewriter)
        output = ANY if node.returns is None else rewriter.type_ref(node.returns.annotation)
        return None if params is None else (params, output)

    def _context_params(
        self, param: cst.Param, owner: str, rewriter: AnnotationRewriter
    ) -> TypeRef | None:
        if param.annotation is None:
            return ANY
        annotation = param.annotation.annotation
        anchor: cst.CSTNode | None = None
        if isinstance(annotation, cst.SimpleString | cst.ConcatenatedString):
            text = annotation.evaluated_value
            parsed = _parse_expression(text) if isinstance(text, str) else None
            if parsed is not None:
                anchor, annotation = annotation, parsed
        if _is_typing_any(self.scope, annotation):
            return ANY
        base = annotation.value if isinstance(annotation, cst.Subscript) else annotation
        if not _names(self.scope, base, CONTEXT):
            message = f"annotate the first parameter of {owner} as `WorkflowContext[Params]`"
            self.problem(param.annotation, message, "invalid_signature")
            return None
        if not isinstance(annotation, cst.Subscript):
            return ANY
        arguments = _subscript_values(annotation)
        if len(arguments) != 1:
            message = f"WorkflowContext takes one type argument (the params) in {owner}"
            self.problem(anchor or annotation, message, "invalid_signature")
            return None
        return rewriter.type_ref(arguments[0], anchor)

    def _class_types(
        self, node: cst.ClassDef, decorator: cst.Decorator | None, rewriter: AnnotationRewriter
    ) -> tuple[TypeRef, TypeRef] | None:
        name = node.name.value
        base = self._entrypoint_base(node)
        if base is None:
            message = (
                f"@workflow on a class needs a `WorkflowEntrypoint[Params, Output]` base; "
                f"{name} has none"
            )
            self.problem(node.name, message, "invalid_signature")
            return None
        if decorator is not None and not isinstance(decorator.decorator, cst.Call):
            message = (
                "a WorkflowEntrypoint class needs no bare @workflow; use "
                '@workflow(name="...") only to rename it'
            )
            self.problem(decorator, message, "invalid_signature")
            return None
        if not isinstance(base.value, cst.Subscript):
            return ANY, ANY
        arguments = _subscript_values(base.value)
        if len(arguments) != 2:
            message = f"{name}: WorkflowEntrypoint takes two type arguments, [Params, Output]"
            self.problem(base, message, "invalid_signature")
            return None
        return rewriter.type_ref(arguments[0]), rewriter.type_ref(arguments[1])


_NO_WORKFLOW = (
    "this file declares no workflow: decorate a top-level `async def` with @workflow "
    "(from framework), or subclass WorkflowEntrypoint[Params, Output]"
)


def scan_workflow_file(source: bytes, file: str, module_name: str) -> FileScan:
    """The workflow declared by one file's ``source``, or the problems that prevent it.

    Args:
        source: the file's bytes.
        file: its path relative to the app root, with ``/`` separators.
        module_name: its dotted import path from the app's parent folder.
    """
    path_problem = module_path_problem(file, module_name)
    if path_problem is not None:
        return FileScan(None, (path_problem,))
    python_problem = python_syntax_problem(source, file)
    if python_problem is not None:
        return FileScan(None, (python_problem,))
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return FileScan(None, (syntax_problem(source, file, exc),))
    reader = _FileReader(module, file, module_name)
    workflow = reader.scan()
    return FileScan(workflow, tuple(reader.problems))


def module_path_problem(file: str, module_name: str) -> Problem | None:
    """A problem when the file's dotted module path is not importable."""
    bad = [part for part in module_name.split(".") if not part.isidentifier()]
    if not bad:
        return None
    message = (
        f"{bad[0]!r} is not a Python identifier, so module {module_name!r} cannot be imported; "
        "rename the file or folder (letters, digits and underscores)"
    )
    return Problem(file, None, None, message, "invalid_module_path")


def python_syntax_problem(source: bytes, file: str) -> Problem | None:
    """What Python's own parser refuses in ``source``, before libcst reads it: code Python
    could not import anyway, some of which libcst's native parser cannot survive (brackets
    nested 2,000 deep overflow its stack: the process dies) or decode (a file that is not
    UTF-8 raised from deep inside it)."""
    try:
        ast.parse(source)
    except SyntaxError as error:
        col = None if error.offset is None else max(error.offset, 1)
        return Problem(file, error.lineno or 1, col or 1, error.msg, "syntax_error")
    except (ValueError, RecursionError, MemoryError) as error:
        message = str(error) or "the code is too deeply nested for Python to parse"
        return Problem(file, 1, 1, message, "syntax_error")
    return _encoding_problem(source, file)


def _encoding_problem(source: bytes, file: str) -> Problem | None:
    """Bytes the file's encoding cannot decode (Python lets them pass in a comment; libcst
    does not)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    except SyntaxError:  # the first lines are not UTF-8: say where
        encoding = "utf-8"
    try:
        source.decode(encoding)
    except UnicodeDecodeError as error:
        line_start = source.rfind(b"\n", 0, error.start) + 1
        line = source.count(b"\n", 0, error.start) + 1
        message = (
            f"the file is not valid {error.encoding}: {error.reason} "
            f"(byte {source[error.start]:#04x})"
        )
        return Problem(file, line, error.start - line_start + 1, message, "syntax_error")
    return None


def syntax_problem(source: bytes, file: str, exc: cst.ParserSyntaxError) -> Problem:
    """The syntax error, located by Python's own parser when it agrees the code is invalid
    (its positions and messages are the ones users know), else by libcst's."""
    try:
        ast.parse(source)
    except SyntaxError as error:
        col = None if error.offset is None else max(error.offset, 1)
        return Problem(file, error.lineno, col, error.msg, "syntax_error")
    except ValueError as error:
        return Problem(file, 1, 1, str(error), "syntax_error")
    return Problem(file, exc.editor_line, exc.editor_column, exc.message, "syntax_error")


def statement_line(module: cst.Module, index: int) -> int:
    """The line of the ``def`` / ``class`` keyword of top-level statement ``index``, computed
    from the code before it (cheaper than position metadata for the whole tree)."""
    line = 1 + len(module.header)
    for statement in module.body[:index]:
        line += module.code_for_node(statement).count("\n")
    node = module.body[index]
    if isinstance(node, cst.FunctionDef | cst.ClassDef):
        line += len(node.leading_lines) + len(node.lines_after_decorators)
        line += sum(module.code_for_node(d).count("\n") for d in node.decorators)
    return line


def module_name_for(package: str, file: str) -> str:
    """The dotted module of ``file`` in app ``package``, from the app's parent folder.

    ``shop``, ``workflows/billing/refund_workflow.py`` -> ``shop.workflows.billing.refund_workflow``
    """
    return ".".join([package, *file.removesuffix(".py").split("/")])


def _names(scope: ModuleScope, expr: cst.BaseExpression, symbol: str) -> bool:
    """Whether ``expr`` is framework's ``symbol`` (imported, aliased, or spelled that way)."""
    if scope.framework_symbol(expr) == symbol:
        return True
    return isinstance(expr, cst.Name | cst.Attribute) and _last_name(expr) == symbol


def _is_typing_any(scope: ModuleScope, expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Name):
        binding = scope.bindings.get(expr.value)
        return isinstance(binding, ImportedName) and binding.module in TYPING_MODULES and (
            binding.name == "Any"
        )
    if isinstance(expr, cst.Attribute) and expr.attr.value == "Any":
        owner = dotted_name(expr.value)
        return owner is not None and scope.module_of(owner) in TYPING_MODULES
    return False


def _last_name(expr: cst.Name | cst.Attribute) -> str:
    return expr.value if isinstance(expr, cst.Name) else expr.attr.value


def _subscript_values(node: cst.Subscript) -> list[cst.BaseExpression]:
    return [e.slice.value for e in node.slice if isinstance(e.slice, cst.Index)]


class _WaitFinder(cst.CSTVisitor):
    """Every ``<anything>.wait_for_event(...)`` call of a module."""

    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == WAIT_FOR_EVENT:
            self.calls.append(node)


def _keyword(call: cst.Call, name: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def _string(node: cst.BaseExpression | None) -> str | None:
    if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _parse_expression(text: str) -> cst.BaseExpression | None:
    try:
        return cst.parse_expression(text.strip())
    except cst.ParserSyntaxError:
        return None
