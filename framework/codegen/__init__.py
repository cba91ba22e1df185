"""Code generation: reads an app's ``*_workflow.py`` files without importing them and writes
its typed ``_generated/`` package and the ``[[workflows]]`` tables of its fw.toml.

Never imports ``framework.runtime`` nor user code.
"""

from __future__ import annotations

from framework.codegen.model import Problem as Problem
from framework.codegen.model import TypeImport as TypeImport
from framework.codegen.model import TypeRef as TypeRef
from framework.codegen.model import WorkflowSpec as WorkflowSpec
from framework.codegen.run import AppScan as AppScan
from framework.codegen.run import CodegenResult as CodegenResult
from framework.codegen.run import run_codegen as run_codegen
from framework.codegen.run import scan_app as scan_app

__all__ = [
    "AppScan",
    "CodegenResult",
    "Problem",
    "TypeImport",
    "TypeRef",
    "WorkflowSpec",
    "run_codegen",
    "scan_app",
]
