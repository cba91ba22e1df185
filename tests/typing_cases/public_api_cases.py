"""Typing cases over fw's public packages: each name resolves with its full type (an ``Any``
would accept anything), and a name that is not there is an error."""

from typing import Any, assert_type

from starlette.applications import Starlette

import framework
import framework.http
from framework import Retries, WorkflowContext, WorkflowFunction, workflow
from framework.http import LiveStatus, create_app, workflow_status_blocking
from framework.testing import FaultPlan, InjectedFailure


@workflow
async def double(ctx: WorkflowContext[int]) -> int:
    return ctx.params * 2


assert_type(double, WorkflowFunction[int, int])
assert_type(create_app("app"), Starlette)
assert_type(workflow_status_blocking("double", "d-1"), LiveStatus[Any])
assert_type(framework.__version__, str)
FaultPlan().fail_step("charge", times=2, error=InjectedFailure)

# assert-type-error-mypy: 'Argument "limit" to "Retries" has incompatible type "str"'
# assert-type-error-pyright: 'cannot be assigned to parameter "limit"'
Retries(limit="three")

# assert-type-error-mypy: 'Module "framework" has no attribute "wokflow"'
# assert-type-error-pyright: '"wokflow" is unknown import symbol'
from framework import wokflow  # noqa: E402

# assert-type-error-mypy: 'Module has no attribute "create_ap"'
# assert-type-error-pyright: '"create_ap" is not a known attribute of module'
framework.http.create_ap("app")
