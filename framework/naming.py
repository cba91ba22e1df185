"""How workflow names, bindings and entrypoint classes derive from file names.

One file, one workflow: ``data_sync_workflow.py`` declares the workflow ``data-sync``, bound as
``DATA_SYNC_WORKFLOW`` and generated as the entrypoint class ``DataSyncWorkflow``.
Codegen and the runtime both use these rules, so they live here, free of either; so do the
rules of the other literals both read: a workflow's ``concurrency`` and ``concurrency_key``.
"""

from __future__ import annotations

import re

WORKFLOW_FILE_SUFFIX = "_workflow.py"
WORKFLOW_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


def is_workflow_file(file_name: str) -> bool:
    """Whether a file name follows the ``*_workflow.py`` convention."""
    return file_name.endswith(WORKFLOW_FILE_SUFFIX) and file_name != WORKFLOW_FILE_SUFFIX


def name_from_file(file_name: str) -> str:
    """``data_sync_workflow.py`` -> ``data-sync``."""
    stem = file_name.removesuffix(WORKFLOW_FILE_SUFFIX)
    return stem.lower().replace("_", "-")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a workflow, or None when it can."""
    if WORKFLOW_NAME_PATTERN.match(name):
        return None
    return (
        f"workflow name {name!r} is not valid: use lowercase letters and digits in words "
        "joined by single hyphens, starting with a letter (like 'data-sync')"
    )


def binding_for(name: str) -> str:
    """``data-sync`` -> ``DATA_SYNC_WORKFLOW``."""
    return name.replace("-", "_").upper() + "_WORKFLOW"


def class_name_for(name: str) -> str:
    """``data-sync`` -> ``DataSyncWorkflow``."""
    return "".join(word.capitalize() for word in name.split("-")) + "Workflow"


def identifier_for(name: str) -> str:
    """``data-sync`` -> ``data_sync``: a Python identifier for generated code."""
    return name.replace("-", "_")


_KEY_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def concurrency_problem(value: object) -> str | None:
    """Why ``value`` cannot be a workflow's ``concurrency`` (None: it can, or it is unset)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"concurrency must be a whole number of at least 1, got {value!r}"
    return None


def concurrency_key_problem(value: object) -> str | None:
    """Why ``value`` cannot be a ``concurrency_key`` path (None: it can, or it is unset)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _KEY_PATH.fullmatch(value):
        return (
            'concurrency_key must be a dotted path into the params, like "customer_id" or '
            f'"customer.id", got {value!r}'
        )
    return None
