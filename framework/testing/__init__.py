"""Testing helpers: ``workflow_test_env``, the ``fw_env`` pytest fixture and failure injection.

Names load on first use (see ``framework.exports``), so the pytest plugin, which pytest loads
in every session, imports no runtime until a test asks for ``fw_env``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.errors import InjectedFailure as InjectedFailure
    from framework.testing.env import WorkflowTestEnv as WorkflowTestEnv
    from framework.testing.env import workflow_test_env as workflow_test_env
    from framework.testing.faults import FaultPlan as FaultPlan

if not TYPE_CHECKING:
    from framework import exports

    __getattr__, __dir__ = exports.lazy_exports(__name__)
