"""Typing cases of the remote client over the sample app ``shop`` (see test_typing.py): the
generated ``connect`` types ``client.workflows.get(name)`` as ``workflows.get(name)`` is.

``# assert-type-error-<checker>: 'regex'`` expects that checker to report an error matching
the regex on the next line that is not such a comment; any other error fails the test.
"""

from typing import Any, Literal, assert_type

from framework import Failure, Success
from framework.client import (
    Client,
    RemoteInstance,
    RemoteWorkflowHandle,
    SyncRemoteInstance,
    SyncRemoteWorkflowHandle,
)
from framework.client import connect as connect_untyped
from framework.runtime.handles import InstancePage
from framework.runtime.records import InstanceStatus, StepRecord
from family._generated import connect as connect_family
from family.workflows.models import Approval, TagParams
from shop._generated import WorkflowName, connect
from shop._generated.client import RemoteWorkflows
from shop.workflows.charge_workflow import Params as ChargeParams
from shop.workflows.models import Item, RefundParams, RefundResult
from shop.workflows.order_pipeline_workflow import OrderParams, OrderResult

client = connect("http://127.0.0.1:8787", token="secret")
assert_type(client, Client[RemoteWorkflows])

# Each name gives its own remote handle type, as workflows.get gives its local one.
assert_type(client.workflows.get("order-pipeline"), RemoteWorkflowHandle[OrderParams, OrderResult])
assert_type(client.workflows.get("refund"), RemoteWorkflowHandle[RefundParams, RefundResult])
assert_type(
    client.workflows.get("data-sync"), RemoteWorkflowHandle[dict[str, int], list[Item] | None]
)
assert_type(
    client.workflows.get("payments"),
    RemoteWorkflowHandle[ChargeParams, Literal["ok", "declined"]],
)
assert_type(client.workflows.get("legacy"), RemoteWorkflowHandle[Any, Any])

# A misspelled name is an error in both checkers.
# assert-type-error-mypy: 'No overload variant of "__call__" of "RemoteWorkflowsGet" matches argument type'
# assert-type-error-pyright: 'No overloads for "__call__"|"Literal\['order-pipelin'\]" is not assignable'
client.workflows.get("order-pipelin")


def by_name(name: WorkflowName, text: str) -> None:
    """A WorkflowName is accepted; a plain str only by get_dynamic."""
    assert_type(client.workflows.get(name), RemoteWorkflowHandle[Any, Any])
    assert_type(client.workflows.get_dynamic(text), RemoteWorkflowHandle[Any, Any])
    # assert-type-error-mypy: 'No overload variant of "__call__" of "(Remote)?WorkflowsGet"'
    # assert-type-error-pyright: 'No overloads for "__call__"|is not assignable'
    client.workflows.get(text)


async def remote() -> None:
    """Params, outputs and statuses flow through the remote methods with their types."""
    async with connect("http://127.0.0.1:8787", token="secret") as shop:
        handle = shop.workflows.get("order-pipeline")
        instance = await handle.create(OrderParams(order_id="o-1", amount=4200), id="o-1")
        assert_type(instance, RemoteInstance[OrderParams, OrderResult])
        assert_type(await instance.result(timeout=30), OrderResult)
        outcome = await instance.outcome(timeout=30)
        if outcome:
            assert_type(outcome.output, OrderResult)
        else:
            assert_type(outcome, Failure)
        assert_type(await instance.status(), InstanceStatus[OrderResult])
        assert_type((await instance.status()).output, OrderResult | None)
        assert_type(await instance.steps(), list[StepRecord])
        assert_type(await handle.list(status="complete"), InstancePage[OrderResult])
        assert_type(await handle.get("o-1"), RemoteInstance[OrderParams, OrderResult])
        assert_type(await shop.instance("o-1"), RemoteInstance[Any, Any])
        await handle.create({"order_id": "o-2", "amount": 1})
        await instance.send_event("approval", {"ok": True})
        await instance.restart(from_step="charge")
        # assert-type-error-mypy: 'Argument 1 to "create" of "RemoteWorkflowHandle" has incompatible type "RefundParams"'
        # assert-type-error-pyright: 'Argument of type "RefundParams" cannot be assigned'
        await handle.create(RefundParams(order_id="o-1", amount=5))
        # assert-type-error-mypy: 'Argument "timeout" to "result" of "RemoteInstance" has incompatible type "str"'
        # assert-type-error-pyright: 'Argument of type "Literal\['soon'\]" cannot be assigned'
        await instance.result(timeout="soon")


def blocking() -> None:
    """The synchronous facade keeps the types."""
    with connect("http://127.0.0.1:8787") as shop:
        handle = shop.workflows.get("refund").sync
        assert_type(handle, SyncRemoteWorkflowHandle[RefundParams, RefundResult])
        instance = handle.create(RefundParams(order_id="o-1", amount=5))
        assert_type(instance, SyncRemoteInstance[RefundParams, RefundResult])
        assert_type(instance.result(timeout=5), RefundResult)
        assert_type(instance.outcome(timeout=5), Success[RefundResult] | Failure)
        assert_type(instance.status(), InstanceStatus[RefundResult])
        assert_type(handle.list(), InstancePage[RefundResult])


async def events() -> None:
    """send_event on a remote instance checks the event type and payload as locally."""
    async with connect_family("http://127.0.0.1:8787") as family:
        review = await family.workflows.get("review").create({"url": "a"}, id="r-1")
        await review.send_event("approval", Approval(approved=True))
        await review.send_event(type="approval", payload={"approved": True})
        await review.send_event("comment")
        assert_type(await review.result(), bool)
        # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
        # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
        await review.send_event(type="aproval", payload=Approval(approved=True))
        # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
        # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
        await review.send_event(type="approval", payload=TagParams(url="a"))
        again = await family.workflows.get("review").get("r-1")
        # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
        # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
        await again.send_event("approvals", {"approved": True})
        inbox = await family.workflows.get("inbox").create(["x"])
        await inbox.send_event(type="anything", payload={"n": 1})
        # RemoteInstance[P, O] annotates a typed instance (events untracked); .sync keeps them.
        assert_type(await annotated(review), SyncRemoteInstance[TagParams, bool])
        # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowSyncEvents" matches'
        # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
        review.sync.send_event("aproval", {"approved": True})


async def annotated(review: RemoteInstance[TagParams, bool]) -> SyncRemoteInstance[TagParams, bool]:
    await review.send_event("anything")
    return review.sync


def blocking_events() -> None:
    """The remote synchronous facade's send_event is typed by the workflow's events too."""
    with connect_family("http://127.0.0.1:8787") as family:
        review = family.workflows.get("review").sync.create({"url": "a"}, id="r-1")
        review.send_event("approval", Approval(approved=True))
        review.send_event(type="approval", payload={"approved": True})
        review.send_event("comment")
        assert_type(review.result(), bool)
        # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowSyncEvents" matches'
        # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
        review.send_event(type="aproval", payload=Approval(approved=True))
        # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowSyncEvents" matches'
        # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
        review.send_event(type="approval", payload=TagParams(url="a"))
        # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowSyncEvents" matches'
        # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
        family.workflows.get("review").sync.get("r-1").send_event("approvals", {})
        inbox = family.workflows.get("inbox").sync.create(["x"])
        inbox.send_event(type="anything", payload={"n": 1})


# The untyped client takes any name; outputs are Any.
untyped = connect_untyped("http://127.0.0.1:8787")
assert_type(untyped.workflows.get("anything"), RemoteWorkflowHandle[Any, Any])

# A name framework.client does not have is an error.
# assert-type-error-mypy: 'Module "framework.client" has no attribute "Clinet"'
# assert-type-error-pyright: '"Clinet" is unknown import symbol'
from framework.client import Clinet  # noqa: E402
