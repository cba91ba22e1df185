"""fw: durable workflows for Python, from a file convention and code generation.

The public API is re-exported here and imported lazily, so ``import framework`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from framework.resources import VERSION as __version__  # noqa: F401 (fw's version)

if TYPE_CHECKING:
    from framework.errors import AppNotFoundError as AppNotFoundError
    from framework.errors import ChildWorkflowError as ChildWorkflowError
    from framework.errors import ConfigError as ConfigError
    from framework.errors import CrashLoopError as CrashLoopError
    from framework.errors import EventTimeoutError as EventTimeoutError
    from framework.errors import FwError as FwError
    from framework.errors import InstanceFailedError as InstanceFailedError
    from framework.errors import InstanceIdConflictError as InstanceIdConflictError
    from framework.errors import InstanceNotFoundError as InstanceNotFoundError
    from framework.errors import InstanceStateError as InstanceStateError
    from framework.errors import InstanceTerminatedError as InstanceTerminatedError
    from framework.errors import InvalidInstanceIdError as InvalidInstanceIdError
    from framework.errors import NonDeterminismError as NonDeterminismError
    from framework.errors import NonRetryableError as NonRetryableError
    from framework.errors import PayloadTooLargeError as PayloadTooLargeError
    from framework.errors import ResultTimeoutError as ResultTimeoutError
    from framework.errors import SerializationError as SerializationError
    from framework.errors import StepError as StepError
    from framework.errors import StepTimeoutError as StepTimeoutError
    from framework.errors import StoreError as StoreError
    from framework.errors import UnknownStepError as UnknownStepError
    from framework.errors import UnknownWorkflowError as UnknownWorkflowError
    from framework.http.live import workflow_status as workflow_status
    from framework.runtime.app import App as App
    from framework.runtime.context import CompensationContext as CompensationContext
    from framework.runtime.context import RollbackContext as RollbackContext
    from framework.runtime.context import StepContext as StepContext
    from framework.runtime.context import WorkflowContext as WorkflowContext
    from framework.runtime.context import WorkflowEvent as WorkflowEvent
    from framework.runtime.definition import Branch as Branch
    from framework.runtime.definition import StepDefinition as StepDefinition
    from framework.runtime.definition import WorkflowEntrypoint as WorkflowEntrypoint
    from framework.runtime.definition import WorkflowFunction as WorkflowFunction
    from framework.runtime.definition import branch as branch
    from framework.runtime.definition import define_step as define_step
    from framework.runtime.definition import workflow as workflow
    from framework.runtime.durations import Duration as Duration
    from framework.runtime.handles import Instance as Instance
    from framework.runtime.handles import InstancePage as InstancePage
    from framework.runtime.handles import WorkflowHandle as WorkflowHandle
    from framework.runtime.records import ErrorInfo as ErrorInfo
    from framework.runtime.records import InstanceStatus as InstanceStatus
    from framework.runtime.records import StepRecord as StepRecord
    from framework.runtime.retries import Retries as Retries
    from framework.runtime.steps import WorkflowStep as WorkflowStep
    from framework.runtime.worker import Worker as Worker

_EXPORTS = {
    "framework.errors": [
        "AppNotFoundError",
        "ChildWorkflowError",
        "ConfigError",
        "CrashLoopError",
        "EventTimeoutError",
        "FwError",
        "InstanceFailedError",
        "InstanceIdConflictError",
        "InstanceNotFoundError",
        "InstanceStateError",
        "InstanceTerminatedError",
        "InvalidInstanceIdError",
        "NonDeterminismError",
        "NonRetryableError",
        "PayloadTooLargeError",
        "ResultTimeoutError",
        "SerializationError",
        "StepError",
        "StepTimeoutError",
        "StoreError",
        "UnknownStepError",
        "UnknownWorkflowError",
    ],
    "framework.runtime.app": ["App"],
    "framework.runtime.context": [
        "CompensationContext",
        "RollbackContext",
        "StepContext",
        "WorkflowContext",
        "WorkflowEvent",
    ],
    "framework.runtime.definition": [
        "Branch",
        "StepDefinition",
        "WorkflowEntrypoint",
        "WorkflowFunction",
        "branch",
        "define_step",
        "workflow",
    ],
    "framework.runtime.durations": ["Duration"],
    "framework.runtime.handles": ["Instance", "InstancePage", "WorkflowHandle"],
    "framework.runtime.records": ["ErrorInfo", "InstanceStatus", "StepRecord"],
    "framework.runtime.retries": ["Retries"],
    "framework.runtime.steps": ["WorkflowStep"],
    "framework.runtime.worker": ["Worker"],
    "framework.http.live": ["workflow_status"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "App",
    "AppNotFoundError",
    "Branch",
    "ChildWorkflowError",
    "CompensationContext",
    "ConfigError",
    "CrashLoopError",
    "Duration",
    "ErrorInfo",
    "EventTimeoutError",
    "FwError",
    "Instance",
    "InstanceFailedError",
    "InstanceIdConflictError",
    "InstanceNotFoundError",
    "InstancePage",
    "InstanceStateError",
    "InstanceStatus",
    "InstanceTerminatedError",
    "InvalidInstanceIdError",
    "NonDeterminismError",
    "NonRetryableError",
    "PayloadTooLargeError",
    "ResultTimeoutError",
    "Retries",
    "RollbackContext",
    "SerializationError",
    "StepContext",
    "StepDefinition",
    "StepError",
    "StepRecord",
    "StepTimeoutError",
    "StoreError",
    "UnknownStepError",
    "UnknownWorkflowError",
    "Worker",
    "WorkflowContext",
    "WorkflowEntrypoint",
    "WorkflowEvent",
    "WorkflowFunction",
    "WorkflowHandle",
    "WorkflowStep",
    "branch",
    "define_step",
    "workflow",
    "workflow_status",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'framework' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
