"""Typing cases over an app with exactly one workflow: ``get`` has no overloads."""

from typing import assert_type

from framework.runtime.handles import WorkflowHandle
from solo._generated import WorkflowName, env, workflows

assert_type(workflows.get("solo"), WorkflowHandle[int, str])
assert_type(env.SOLO_WORKFLOW, WorkflowHandle[int, str])
only: WorkflowName = "solo"

# assert-type-error-mypy: 'Argument 1 to "get" of "Workflows" has incompatible type'
# assert-type-error-pyright: 'cannot be assigned to parameter "name"'
workflows.get("sol")
