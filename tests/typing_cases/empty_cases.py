"""Typing cases over an app with no workflows: ``WorkflowName`` is ``Never``."""

from typing import Any, assert_type

from empty._generated import env, workflows
from framework.runtime.handles import WorkflowHandle

assert_type(workflows.get_dynamic("anything"), WorkflowHandle[Any, Any])
assert_type(workflows.names(), list[str])

# assert-type-error-mypy: 'Argument 1 to "get" of "Workflows" has incompatible type'
# assert-type-error-pyright: 'cannot be assigned to parameter "name"'
workflows.get("anything")

# assert-type-error-mypy: '"Env" has no attribute "ANY_WORKFLOW"'
# assert-type-error-pyright: 'Cannot access attribute "ANY_WORKFLOW"'
env.ANY_WORKFLOW
