"""What codegen knows about an app: its workflows, their types, and the problems found."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
WorkflowForm = Literal["function", "class"]


@dataclass(frozen=True)
class Problem:
    """A finding about the user's code or fw.toml, located as precisely as known.

    ``file`` is relative to the app root with ``/`` separators (``""`` for the app folder
    itself); ``line`` and ``col`` are 1-based.
    """

    file: str
    line: int | None
    col: int | None
    message: str
    code: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def location(self, root: Path) -> str:
        """``path:line:col`` (or ``path:line``, or ``path``), the path as the user would type it."""
        parts = [display_path(root, self.file)]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def format(self, root: Path) -> str:
        """One line: ``path:line:col: error: message  [code]``."""
        return f"{self.location(root)}: {self.severity}: {self.message}  [{self.code}]"

    def to_json(self, root: Path) -> dict[str, Any]:
        return {
            "path": display_path(root, self.file),
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "message": self.message,
            "code": self.code,
            "severity": self.severity,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        return cls(**data)


@dataclass(frozen=True)
class TypeImport:
    """An import the generated stubs need, always under a per-workflow alias.

    ``name`` is None for ``import module as alias``.
    """

    module: str
    name: str | None
    alias: str

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.module, self.name or "", self.alias)

    @property
    def statement(self) -> str:
        if self.name is None:
            return f"import {self.module} as {self.alias}"
        return f"from {self.module} import {self.name} as {self.alias}"


@dataclass(frozen=True)
class TypeRef:
    """A params or output type as generated code writes it, with the imports it needs."""

    expression: str
    imports: tuple[TypeImport, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "expression": self.expression,
            "imports": [[i.module, i.name, i.alias] for i in self.imports],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TypeRef:
        imports = tuple(TypeImport(module, name, alias) for module, name, alias in data["imports"])
        return cls(data["expression"], imports)


ANY = TypeRef("Any")


@dataclass(frozen=True)
class EventSpec:
    """An event type a workflow waits for (``wait_for_event(..., type="...", model=...)``).

    ``payload`` is the model as generated code writes it (``ANY`` without one); ``model`` is
    its dotted name in the workflow's module, for the runtime (None: no model, or not a name).
    """

    type: str
    payload: TypeRef = ANY
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "payload": self.payload.to_dict(), "model": self.model}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventSpec:
        return cls(data["type"], TypeRef.from_dict(data["payload"]), data["model"])


@dataclass(frozen=True)
class WorkflowSpec:
    """One workflow, as declared by one ``*_workflow.py`` file."""

    name: str
    binding: str
    class_name: str
    module: str
    attribute: str
    file: str
    line: int
    form: WorkflowForm
    params: TypeRef
    output: TypeRef
    events: tuple[EventSpec, ...] = ()
    open_events: bool = False
    """Some wait computes its event type at run time: any type may be sent."""
    concurrency: int | None = None
    """``@workflow(concurrency=...)`` or the class attribute (``codegen/concurrency.py``)."""
    concurrency_key: str | None = None

    @property
    def events_class(self) -> str:
        """The generated protocol of ``send_event`` of this workflow's instances."""
        return f"{self.class_name}Events"

    @property
    def handle_module(self) -> str:
        """Its module in ``_generated/handles/`` (``order_pipeline_workflow``): its typed
        ``handle`` alone, and its events protocols."""
        return self.binding.lower()

    @property
    def sync_events_class(self) -> str:
        """Its blocking twin, the ``send_event`` of ``instance.sync``."""
        return f"{self.class_name}SyncEvents"

    @property
    def closed_events(self) -> bool:
        """Whether the workflow waits for events of literal types only (``events_class``
        types its ``send_event``); else any type may be sent (none known, or one computed)."""
        return bool(self.events) and not self.open_events

    @property
    def handle_type(self) -> str:
        """``WorkflowHandle[P, O, Events, SyncEvents]`` with ``closed_events``; else ``[P, O]``."""
        return self.typed("WorkflowHandle")

    @property
    def remote_handle_type(self) -> str:
        """The same for the remote client: ``RemoteWorkflowHandle[P, O(, Events, SyncEvents)]``."""
        return self.typed("RemoteWorkflowHandle")

    def typed(self, generic: str) -> str:
        """``generic`` typed by this workflow's params, output and (if closed) events."""
        events = f", {self.events_class}, {self.sync_events_class}" if self.closed_events else ""
        return f"{generic}[{self.params.expression}, {self.output.expression}{events}]"

    def manifest_keys(self) -> dict[str, str]:
        """The keys codegen owns in this workflow's ``[[workflows]]`` table of fw.toml."""
        return {
            "name": self.name,
            "binding": self.binding,
            "class_name": self.class_name,
            "module": self.module,
            "file": self.file,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.manifest_keys(),
            "attribute": self.attribute,
            "line": self.line,
            "form": self.form,
            "params": self.params.to_dict(),
            "output": self.output.to_dict(),
            "events": [e.to_dict() for e in self.events],
            "open_events": self.open_events,
            "concurrency": self.concurrency,
            "concurrency_key": self.concurrency_key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowSpec:
        return cls(
            name=data["name"],
            binding=data["binding"],
            class_name=data["class_name"],
            module=data["module"],
            attribute=data["attribute"],
            file=data["file"],
            line=data["line"],
            form=data["form"],
            params=TypeRef.from_dict(data["params"]),
            output=TypeRef.from_dict(data["output"]),
            events=tuple(EventSpec.from_dict(e) for e in data.get("events", ())),
            open_events=data.get("open_events", False),
            concurrency=data.get("concurrency"),
            concurrency_key=data.get("concurrency_key"),
        )


@dataclass(frozen=True)
class FileScan:
    """What one workflow file declares: its workflow, or the problems that prevent it."""

    workflow: WorkflowSpec | None
    problems: tuple[Problem, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": None if self.workflow is None else self.workflow.to_dict(),
            "problems": [p.to_dict() for p in self.problems],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileScan:
        workflow = data["workflow"]
        return cls(
            None if workflow is None else WorkflowSpec.from_dict(workflow),
            tuple(Problem.from_dict(p) for p in data["problems"]),
        )


def display_path(root: Path, file: str) -> str:
    """``root/file`` relative to the working directory when inside it, else absolute."""
    path = root / file if file else root
    try:
        return path.relative_to(Path.cwd()).as_posix() or "."
    except (ValueError, OSError):
        return path.as_posix()


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """Problems in reading order: by file, line and column."""
    return sorted(problems, key=lambda p: (p.file, p.line or 0, p.col or 0, p.message))
