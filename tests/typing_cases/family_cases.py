"""Typing cases over the sample app ``family``: children, events and live status (see
test_typing.py).

``# assert-type-error-<checker>: 'regex'`` expects that checker to report an error matching
the regex on the next line that is not such a comment; any other error fails the test.
"""

from typing import TYPE_CHECKING, Any, Literal, assert_type

from family._generated import workflows
from family._generated.handles import resize_workflow, review_workflow
from family.workflows.models import Approval, ResizeParams, TagParams
from framework import Branch, Instance, WorkflowContext, branch, workflow_status
from framework.http import LiveStatus
from framework.runtime.handles import WorkflowHandle

if TYPE_CHECKING:
    from family._generated.handles.review_workflow import (
        ReviewWorkflowEvents,
        ReviewWorkflowSyncEvents,
    )

# A misspelled workflow module is an error in both checkers.
# assert-type-error-mypy: 'Module "family._generated.handles" has no attribute "reviw_workflow"|Cannot find implementation or library stub'
# assert-type-error-pyright: '"reviw_workflow" is unknown import symbol|Import "family._generated.handles.reviw_workflow" could not be resolved'
from family._generated.handles import reviw_workflow  # noqa: E402


async def children(ctx: WorkflowContext[None]) -> None:
    """Branches and spawns are typed by the child they name."""
    tag, resize = workflows.get("tag"), workflows.get("resize")
    assert_type(tag.branch({"url": "a"}), Branch[list[str]])
    assert_type(await ctx.parallel([tag.branch(TagParams(url=u)) for u in "ab"]), list[list[str]])
    assert_type(await ctx.parallel((resize.branch(ResizeParams("a", 1)),)), tuple[int])
    eight = await ctx.parallel(
        (
            tag.branch({"url": "1"}),
            resize.branch({"url": "2", "width": 2}),
            tag.branch({"url": "3"}),
            resize.branch({"url": "4", "width": 4}),
            tag.branch({"url": "5"}),
            resize.branch({"url": "6", "width": 6}),
            workflows.get("review").branch({"url": "7"}),
            workflows.get("inbox").branch(["8"]),
        )
    )
    assert_type(eight, tuple[list[str], int, list[str], int, list[str], int, bool, int])
    # The untyped escape hatch: any name, Any output.
    assert_type(await ctx.parallel([branch("tag", {"url": "a"})]), list[Any])
    spawned = await ctx.spawn(workflows.get("resize"), ResizeParams("a", 2))
    assert_type(spawned, Instance[ResizeParams, int])
    assert_type(await spawned.result(), int)
    assert_type(await ctx.spawn("tag", {"url": "a"}), Instance[Any, Any])


async def child_mistakes(ctx: WorkflowContext[None]) -> None:
    """A misspelled child, or params of another workflow, are errors."""
    # assert-type-error-mypy: 'No overload variant of "__call__" of "(Remote)?WorkflowsGet"'
    # assert-type-error-pyright: 'No overloads for "__call__"|is not assignable'
    workflows.get("tagg").branch({"url": "a"})
    # assert-type-error-mypy: 'Argument 1 to "branch" of "WorkflowHandle" has incompatible type "ResizeParams"'
    # assert-type-error-pyright: 'Argument of type "ResizeParams" cannot be assigned'
    workflows.get("tag").branch(ResizeParams("a", 1))
    # assert-type-error-mypy: 'Cannot infer value of type parameter "C" of "spawn"|Argument 2 to "spawn"'
    # assert-type-error-pyright: 'No overloads for "spawn"|Argument of type "TagParams" cannot be assigned'
    await ctx.spawn(workflows.get("resize"), TagParams(url="a"))
    # assert-type-error-mypy: 'No overload variant of "__call__" of "(Remote)?WorkflowsGet"'
    # assert-type-error-pyright: 'No overloads for "__call__"|is not assignable'
    await ctx.spawn(workflows.get("resise"), {"url": "a", "width": 1})
    first, second = await ctx.parallel((workflows.get("tag").branch({"url": "a"}),) * 2)
    # assert-type-error-mypy: 'No overload variant of "__add__" of "list" matches argument type "int"'
    # assert-type-error-pyright: 'Operator "\+" not supported'
    first + 1
    assert_type(second, list[str])


async def live_status() -> None:
    """workflow_status is typed by the handle it is given."""
    status = await workflow_status(workflows.get("resize"), "r-1")
    assert_type(status, LiveStatus[int])
    assert_type(status.output, int | None)
    assert_type(await workflow_status("resize", "r-1"), LiveStatus[Any])
    # assert-type-error-mypy: 'No overload variant of "__call__" of "(Remote)?WorkflowsGet"'
    # assert-type-error-pyright: 'No overloads for "__call__"|is not assignable'
    await workflow_status(workflows.get("resise"), "r-1")


async def events() -> None:
    """send_event on a typed instance checks the event type and its payload's model."""
    review = await workflows.get("review").create({"url": "a"}, id="r-1")
    await review.send_event("approval", Approval(approved=True))
    await review.send_event(type="approval", payload={"approved": True})
    await review.send_event(type="comment", payload="looks good")
    await review.send_event("comment")
    assert_type(await review.result(), bool)
    # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
    # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
    await review.send_event(type="aproval", payload=Approval(approved=True))
    # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
    # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
    await review.send_event(type="approval", payload=TagParams(url="a"))
    # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
    # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
    await review.send_event(type="approval")
    # A workflow computing an event type accepts any str.
    inbox = await workflows.get("inbox").create(["x"])
    await inbox.send_event(type="anything", payload={"n": 1})
    # Found again by id, the instance is as typed.
    again = await workflows.get("review").get("r-1")
    # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
    # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
    await again.send_event("approvals", {"approved": True})


async def annotated(review: Instance[TagParams, bool]) -> bool:
    """An ``Instance[P, O]`` annotation leaves the event types out: untracked."""
    await review.send_event("anything", {"untracked": True})
    review.sync.send_event("anything")
    return await review.result()


async def contract_annotations(ctx: WorkflowContext[None]) -> None:
    """``Instance[P, O]`` (params, output) is how code annotates an instance: it accepts a typed
    handle's instance, whose event types ride in defaulted parameters."""
    review: Instance[TagParams, bool] = await workflows.get("review").create({"url": "a"})
    assert_type(await annotated(review), bool)
    spawned: Instance[ResizeParams, int] = await ctx.spawn(
        workflows.get("resize"), {"url": "a", "width": 1}
    )
    assert_type(await spawned.result(), int)
    # assert-type-error-mypy: 'Incompatible types in assignment'
    # assert-type-error-pyright: 'is not assignable|cannot be assigned'
    wrong: Instance[ResizeParams, bool] = await workflows.get("review").create({"url": "a"})


def blocking_events() -> None:
    """The synchronous facade's send_event is typed by the workflow's events as the async one."""
    review = workflows.get("review").sync.create({"url": "a"}, id="r-1")
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
    workflows.get("review").sync.get("r-1").send_event("approvals", {"approved": True})


async def blocking_from_async() -> None:
    """``instance.sync`` keeps the events of the instance it comes from."""
    review = await workflows.get("review").get("r-1")
    review.sync.send_event("approval", {"approved": True})
    # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowSyncEvents" matches'
    # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
    review.sync.send_event("aproval", {"approved": True})
    # A workflow computing an event type accepts any str, blocking too.
    inbox = workflows.get("inbox").sync.create(["x"])
    inbox.send_event(type="anything", payload={"n": 1})


async def spawned_events(ctx: WorkflowContext[None]) -> None:
    """A spawned child's instance is typed like a created one."""
    child = await ctx.spawn(workflows.get("review"), TagParams(url="a"))
    assert_type(await child.result(), bool)
    # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
    # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
    await child.send_event("approved", {"approved": True})


async def per_workflow_modules(ctx: WorkflowContext[None]) -> None:
    """``_generated/handles/<binding>.py``: one workflow's handle alone, typed as
    ``workflows.get(name)`` is (its events protocols are the same classes)."""
    assert_type(
        review_workflow.handle,
        WorkflowHandle[TagParams, bool, ReviewWorkflowEvents, ReviewWorkflowSyncEvents],
    )
    assert_type(
        workflows.get("review"),
        WorkflowHandle[TagParams, bool, ReviewWorkflowEvents, ReviewWorkflowSyncEvents],
    )
    assert_type(resize_workflow.handle, WorkflowHandle[ResizeParams, int])
    assert_type(review_workflow.NAME, Literal["review"])
    sizes = await ctx.parallel([resize_workflow.handle.branch(ResizeParams("a", n)) for n in (1, 2)])
    assert_type(sizes, list[int])
    review = await ctx.spawn(review_workflow.handle, {"url": "a"})
    assert_type(review, Instance[TagParams, bool, ReviewWorkflowEvents, ReviewWorkflowSyncEvents])
    await review.send_event("approval", Approval(approved=True))
    # assert-type-error-mypy: 'No overload variant of "__call__" of "ReviewWorkflowEvents" matches'
    # assert-type-error-pyright: 'No overloads for "__call__"|cannot be assigned|is not assignable'
    await review.send_event("aproval", Approval(approved=True))
    started = await review_workflow.handle.create(TagParams(url="b"))
    assert_type(await started.result(), bool)
    # assert-type-error-mypy: 'Argument 1 to "create" of "WorkflowHandle" has incompatible type "ResizeParams"'
    # assert-type-error-pyright: 'Argument of type "ResizeParams" cannot be assigned'
    await review_workflow.handle.create(ResizeParams("a", 1))
    # assert-type-error-mypy: 'Module has no attribute "handel"|has no attribute "handel"'
    # assert-type-error-pyright: '"handel" is not a known attribute of module'
    review_workflow.handel
