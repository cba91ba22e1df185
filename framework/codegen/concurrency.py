"""Reading a workflow's concurrency limit from its code: the literals of
``@workflow(concurrency=2, concurrency_key="customer_id")``, or, in the class form, the class
attributes ``concurrency = 2`` and ``concurrency_key = "customer_id"`` (the decorator's win,
as they do at run time). Codegen writes them into the entrypoint, so a worker knows every
limit without importing the workflows."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from framework.naming import concurrency_key_problem, concurrency_problem

OPTIONS = ("concurrency", "concurrency_key")


@dataclass
class ConcurrencyLiterals:
    """What the code declares, and the nodes that hold values codegen cannot use."""

    concurrency: int | None = None
    concurrency_key: str | None = None
    problems: list[tuple[cst.CSTNode, str]] = field(default_factory=list[tuple[cst.CSTNode, str]])

    def read(self, option: str, value: cst.BaseExpression) -> None:
        """Take ``option = value`` (a keyword or a class attribute), or note why not."""
        if isinstance(value, cst.Name) and value.value == "None":
            setattr(self, option, None)
            return
        if option == "concurrency":
            number = _integer(value)
            problem = concurrency_problem(number) if number is not None else None
            if number is None:
                problem = "concurrency must be an integer literal (codegen reads it), like 2"
            if problem is None:
                self.concurrency = number
        else:
            text = _string(value)
            problem = concurrency_key_problem(text) if text is not None else None
            if text is None:
                problem = 'concurrency_key must be a string literal, like "customer_id"'
            if problem is None:
                self.concurrency_key = text
        if problem is not None:
            self.problems.append((value, problem))


def read_concurrency(
    decorator: cst.Decorator | None, node: cst.FunctionDef | cst.ClassDef
) -> ConcurrencyLiterals:
    """The concurrency literals of one workflow's declaration."""
    found = ConcurrencyLiterals()
    if isinstance(node, cst.ClassDef) and isinstance(node.body, cst.IndentedBlock):
        for statement in node.body.body:
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                for option, value in _class_attribute(small):
                    found.read(option, value)
    if decorator is not None and isinstance(decorator.decorator, cst.Call):
        for arg in decorator.decorator.args:
            if arg.keyword is not None and arg.keyword.value in OPTIONS:
                found.read(arg.keyword.value, arg.value)
    return found


def _class_attribute(small: cst.BaseSmallStatement) -> list[tuple[str, cst.BaseExpression]]:
    if isinstance(small, cst.Assign):
        names = [t.target.value for t in small.targets if isinstance(t.target, cst.Name)]
        return [(name, small.value) for name in names if name in OPTIONS]
    if (
        isinstance(small, cst.AnnAssign)
        and isinstance(small.target, cst.Name)
        and small.target.value in OPTIONS
        and small.value is not None
    ):
        return [(small.target.value, small.value)]
    return []


def _integer(value: cst.BaseExpression) -> int | None:
    return value.evaluated_value if isinstance(value, cst.Integer) else None


def _string(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None
