"""Typing cases of the test environment: ``wait_for`` returns the instance's typed status,
and a misspelled status is an error."""

from typing import assert_type

from framework import Instance, InstanceStatus
from framework.testing import WorkflowTestEnv


async def barriers(env: WorkflowTestEnv, instance: Instance[None, int]) -> None:
    assert_type(await env.wait_for(instance, "waiting"), InstanceStatus[int])
    assert_type(await env.wait_for(instance, ("complete", "errored"), 5), InstanceStatus[int])
    assert_type(await env.idle(), None)
    await env.worker.idle(timeout=1.0)

    # assert-type-error-mypy: 'Argument 2 to "wait_for" of "WorkflowTestEnv" has incompatible type "Literal\['wating'\]"'
    # assert-type-error-pyright: 'Argument of type "Literal\['wating'\]" cannot be assigned to parameter "status"'
    await env.wait_for(instance, "wating")
