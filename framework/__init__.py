"""fw: durable workflows for Python, from a file convention and code generation.

The public API: the names of the ``TYPE_CHECKING`` block below, its one list. Each is imported
from its module when first used (see ``framework.exports``), so ``import framework`` imports
nothing else. The other public packages are ``framework.http``, ``framework.testing`` and
``framework.client``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from framework import resources

if TYPE_CHECKING:
    from framework.errors import AppNotFoundError as AppNotFoundError
    from framework.errors import ChildWorkflowError as ChildWorkflowError
    from framework.errors import ConcurrencyKeyError as ConcurrencyKeyError
    from framework.errors import ConfigError as ConfigError
    from framework.errors import CrashLoopError as CrashLoopError
    from framework.errors import EventTimeoutError as EventTimeoutError
    from framework.errors import FwError as FwError
    from framework.errors import InstanceFailedError as InstanceFailedError
    from framework.errors import InstanceIdConflictError as InstanceIdConflictError
    from framework.errors import InstanceNotFoundError as InstanceNotFoundError
    from framework.errors import InstanceStateError as InstanceStateError
    from framework.errors import InstanceTerminatedError as InstanceTerminatedError
    from framework.errors import InvalidEventPayloadError as InvalidEventPayloadError
    from framework.errors import InvalidInstanceIdError as InvalidInstanceIdError
    from framework.errors import NonDeterminismError as NonDeterminismError
    from framework.errors import NonRetryableError as NonRetryableError
    from framework.errors import PayloadTooLargeError as PayloadTooLargeError
    from framework.errors import RemoteAuthError as RemoteAuthError
    from framework.errors import RemoteError as RemoteError
    from framework.errors import RemoteUnavailableError as RemoteUnavailableError
    from framework.errors import ResultTimeoutError as ResultTimeoutError
    from framework.errors import SerializationError as SerializationError
    from framework.errors import StepError as StepError
    from framework.errors import StepTimeoutError as StepTimeoutError
    from framework.errors import StoreError as StoreError
    from framework.errors import UnknownEventTypeError as UnknownEventTypeError
    from framework.errors import UnknownStepError as UnknownStepError
    from framework.errors import UnknownWorkflowError as UnknownWorkflowError
    from framework.errors import WorkflowImportError as WorkflowImportError
    from framework.errors import WorkflowTimeoutError as WorkflowTimeoutError
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
    from framework.runtime.outcomes import Failure as Failure
    from framework.runtime.outcomes import Success as Success
    from framework.runtime.records import ErrorInfo as ErrorInfo
    from framework.runtime.records import InstanceStatus as InstanceStatus
    from framework.runtime.records import StepRecord as StepRecord
    from framework.runtime.retries import Retries as Retries
    from framework.runtime.step_config import StepConfig as StepConfig
    from framework.runtime.step_config import StepInfo as StepInfo
    from framework.runtime.steps import WorkflowStep as WorkflowStep
    from framework.runtime.worker import Worker as Worker

__version__ = resources.VERSION

if not TYPE_CHECKING:
    from framework import exports

    __getattr__, __dir__ = exports.lazy_exports(__name__)
