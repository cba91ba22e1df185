"""Typing cases over the generated package of the sample app ``shop`` (see test_typing.py).

``# assert-type-error-<checker>: 'regex'`` expects that checker to report an error matching
the regex on the next line that is not such a comment; any other error fails the test.
"""

from typing import Any, Literal, assert_type

from framework import ErrorInfo, Failure, StepRecord, Success
from framework.runtime.handles import Instance, WorkflowHandle
from shop._generated import WorkflowName, env, workflows
from shop._generated.workflows import ORDER_PIPELINE_WORKFLOW
from shop.workflows.charge_workflow import Params as ChargeParams
from shop.workflows.models import Item, RefundParams, RefundResult
from shop.workflows.notify_workflow import Params as NotifyParams
from shop.workflows.order_pipeline_workflow import OrderParams, OrderResult

# Each name gives its own handle type.
assert_type(workflows.get("order-pipeline"), WorkflowHandle[OrderParams, OrderResult])
assert_type(workflows.get("refund"), WorkflowHandle[RefundParams, RefundResult])
assert_type(workflows.get("data-sync"), WorkflowHandle[dict[str, int], list[Item] | None])
assert_type(workflows.get("payments"), WorkflowHandle[ChargeParams, Literal["ok", "declined"]])
assert_type(workflows.get("notify"), WorkflowHandle[NotifyParams, None])
assert_type(workflows.get("legacy"), WorkflowHandle[Any, Any])
assert_type(workflows.get(ORDER_PIPELINE_WORKFLOW), WorkflowHandle[OrderParams, OrderResult])

# An annotated variable accepts the handle.
pipeline: WorkflowHandle[OrderParams, OrderResult] = workflows.get("order-pipeline")

# A misspelled name is an error in both checkers.
# assert-type-error-mypy: 'No overload variant of "__call__" of "WorkflowsGet" matches argument type'
# assert-type-error-pyright: 'No overloads for "__call__"|"Literal\['order-pipelin'\]" is not assignable'
workflows.get("order-pipelin")

# The overriding name is the name; the file's name is not.
# assert-type-error-mypy: 'No overload variant of "__call__" of "(Remote)?WorkflowsGet"'
# assert-type-error-pyright: 'No overloads for "__call__"|is not assignable'
workflows.get("charge")

# Bindings are typed attributes of env.
assert_type(env.ORDER_PIPELINE_WORKFLOW, WorkflowHandle[OrderParams, OrderResult])
assert_type(env.PAYMENTS_WORKFLOW, WorkflowHandle[ChargeParams, Literal["ok", "declined"]])
# assert-type-error-mypy: '"Env" has no attribute "ORDER_PIPELIN_WORKFLOW"'
# assert-type-error-pyright: 'Cannot access attribute "ORDER_PIPELIN_WORKFLOW"'
env.ORDER_PIPELIN_WORKFLOW


def by_name(name: WorkflowName) -> WorkflowHandle[Any, Any]:
    """A WorkflowName-typed variable is accepted."""
    handle = workflows.get(name)
    assert_type(handle, WorkflowHandle[Any, Any])
    return handle


def by_string(name: str) -> None:
    """A plain str is not a WorkflowName; get_dynamic takes it."""
    # assert-type-error-mypy: 'No overload variant of "__call__" of "(Remote)?WorkflowsGet"'
    # assert-type-error-pyright: 'No overloads for "__call__"|is not assignable'
    workflows.get(name)
    assert_type(workflows.get_dynamic(name), WorkflowHandle[Any, Any])


names: list[WorkflowName] = ["order-pipeline", "refund"]
# assert-type-error-mypy: 'List item 0 has incompatible type'
# assert-type-error-pyright: 'is not assignable'
wrong_names: list[WorkflowName] = ["order"]


async def start() -> None:
    """Params and outputs flow through create() and result()."""
    handle = workflows.get("order-pipeline")
    instance = await handle.create(OrderParams(order_id="o-1", amount=4200), id="o-1")
    assert_type(instance, Instance[OrderParams, OrderResult])
    assert_type(
        await (await handle.create(params={"order_id": "o-2", "amount": 1})).result(), OrderResult
    )
    refund = await env.REFUND_WORKFLOW.create(RefundParams(order_id="o-1", amount=5))
    assert_type(await refund.result(timeout=5), RefundResult)
    # outcome(): a success typed by the output, or a failure; each test narrows it.
    outcome = await refund.outcome(timeout=5)
    assert_type(outcome, Success[RefundResult] | Failure)
    if outcome:
        assert_type(outcome.output, RefundResult)
    else:
        assert_type(outcome.failed_step, str | None)
        assert_type(outcome.steps, list[StepRecord])
    if outcome.ok is True:
        assert_type(outcome, Success[RefundResult])
    else:
        assert_type(outcome, Failure)
    match outcome:
        case Success():
            assert_type(outcome.output, RefundResult)
        case Failure():
            assert_type(outcome.error, ErrorInfo)
    if outcome.ok:  # mypy narrows on the attribute's truthiness; pyright does not
        # assert-type-error-pyright: 'Cannot access attribute "output" for class "Failure"'
        assert_type(outcome.output, RefundResult)
    # assert-type-error-mypy: 'Item "Success\[RefundResult\]" of "Success\[RefundResult\] \| Failure" has no attribute "failed_step"'
    # assert-type-error-pyright: 'Cannot access attribute "failed_step" for class "Success\[RefundResult\]"'
    print(outcome.failed_step)
    assert_type(refund.sync.outcome(timeout=5), Success[RefundResult] | Failure)
    # assert-type-error-mypy: 'Argument 1 to "create" of "WorkflowHandle" has incompatible type "RefundParams"'
    # assert-type-error-pyright: 'Argument of type "RefundParams" cannot be assigned'
    await handle.create(RefundParams(order_id="o-1", amount=5))
