"""Importing a workflow's module: any failure becomes a ``WorkflowImportError`` naming the
file and line to fix and the original error, for the CLI, the HTTP API and ``fw dev``."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.errors import WorkflowImportError
from framework.runtime.failures import message_of, raised_by_user

if TYPE_CHECKING:
    from framework.runtime.entrypoint import Entrypoint


def load_workflow(root: Path, entrypoint: type[Entrypoint]) -> Any:
    """Import the module of ``entrypoint`` and return its workflow.

    Raises:
        WorkflowImportError: the module failed to import (whatever it raised, ``SystemExit``
            included), with the deepest line of the app's own code on the way.
    """
    try:
        return entrypoint.load()
    except BaseException as exc:
        if not raised_by_user(exc):
            raise
        raise import_failure(root, entrypoint.name, entrypoint.file, exc) from exc


def import_failure(
    root: Path, workflow: str, file: str, exc: BaseException
) -> WorkflowImportError:
    """``exc``, raised importing ``file`` (relative to ``root``), as a ``WorkflowImportError``."""
    where = _where(root, exc)
    path, line = where if where is not None else (file, None)
    return WorkflowImportError(workflow, path, line, f"{type(exc).__name__}: {message_of(exc)}")


def _where(root: Path, exc: BaseException) -> tuple[str, int | None] | None:
    """The file (relative to ``root``) and line of the app's code where ``exc`` arose: a
    syntax error's own position, else the deepest frame of a file inside ``root``."""
    if isinstance(exc, SyntaxError) and exc.filename:
        inside = _relative(root, exc.filename)
        if inside is not None:
            return inside, exc.lineno
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        inside = _relative(root, frame.filename)
        if inside is not None:
            return inside, frame.lineno
    return None


def _relative(root: Path, filename: str) -> str | None:
    try:
        return Path(filename).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return None
