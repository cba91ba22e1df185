"""Testing helpers: ``workflow_test_env`` and the ``fw_env`` pytest fixture."""

from framework.errors import InjectedFailure as InjectedFailure
from framework.testing.env import WorkflowTestEnv as WorkflowTestEnv
from framework.testing.env import workflow_test_env as workflow_test_env
from framework.testing.faults import FaultPlan as FaultPlan

__all__ = ["FaultPlan", "InjectedFailure", "WorkflowTestEnv", "workflow_test_env"]
