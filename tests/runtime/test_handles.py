"""Handles: create (idempotent, validated, batched), get, list, result, the sync facade."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from framework import (
    InstanceIdConflictError,
    InstanceNotFoundError,
    InstanceStateError,
    InvalidInstanceIdError,
    PayloadTooLargeError,
    ResultTimeoutError,
    UnknownStepError,
    UnknownWorkflowError,
)
from framework.runtime.app import App
from tests.apps import write_app
from tests.leaks import OpenedConnections, connections_left
from tests.runtime.conftest import MakeEnv

ORDERS = """
from pydantic import BaseModel, Field
from framework import workflow, WorkflowContext

class OrderParams(BaseModel):
    order_id: str
    amount: int = Field(gt=0)
    note: str = ""

class OrderResult(BaseModel):
    receipt_id: str

@workflow
async def order_pipeline(ctx: WorkflowContext[OrderParams]) -> OrderResult:
    receipt = await ctx.step.do("charge", lambda: f"rc-{ctx.params.order_id}")
    await ctx.step.wait_for_event("hold", type="release")
    return OrderResult(receipt_id=receipt)
"""


OTHER = """
from framework import workflow, WorkflowContext

@workflow
async def other(ctx: WorkflowContext[int]) -> int:
    return ctx.params
"""


async def test_create_is_idempotent_by_id(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    handle = env.get("order-pipeline")

    first = await handle.create({"order_id": "o-1", "amount": 5}, id="o-1")
    again = await handle.create({"order_id": "o-1", "amount": 999}, id="o-1")
    same = await handle.create({"amount": 5, "order_id": "o-1"}, id="o-1")

    assert again.id == first.id == "o-1"
    assert (first.created, first.params_match) == (True, True)
    assert (again.created, again.params_match) == (False, False)
    assert (same.created, same.params_match) == (False, True)
    assert (await handle.get("o-1")).created is None
    assert (await again.status()).params == {"order_id": "o-1", "amount": 5, "note": ""}
    assert len((await handle.list()).instances) == 1


async def test_concurrent_creates_of_one_id_report_one_created(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    handle = env.get("order-pipeline")

    instances = await asyncio.gather(
        *(handle.create({"order_id": "o-1", "amount": n + 1}, id="o-1") for n in range(20))
    )

    created = [n for n, instance in enumerate(instances) if instance.created]
    assert len(created) == 1
    stored = (await (await handle.get("o-1")).status()).params
    assert stored["amount"] == created[0] + 1
    assert [i.params_match for i in instances] == [n in created for n in range(20)]


async def test_create_batch_stores_nothing_when_an_id_belongs_to_another_workflow(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS, "other_workflow.py": OTHER})
    handle = env.get("order-pipeline")
    await env.run("other", 7, id="taken")

    ids = [("o-0", "o-0"), ("o-1", "o-1"), ("o-2", "o-2"), ("t", "taken")]  # (order, instance id)
    with pytest.raises(InstanceIdConflictError) as refused:
        await handle.create_batch(
            [{"params": {"order_id": order, "amount": 1}, "id": at} for order, at in ids]
        )
    with pytest.raises(InstanceIdConflictError, match=r"already belongs to .* workflow 'other'"):
        await handle.create({"order_id": "t", "amount": 1}, id="taken")

    assert (refused.value.index, refused.value.instance_id) == (3, "taken")
    assert str(refused.value) == (
        "id 'taken' (item 3 of the batch) already belongs to an instance of workflow "
        "'other'; nothing was stored"
    )
    assert (await handle.list()).instances == []
    assert await (await env.get("other").get("taken")).result(timeout=5) == 7


async def test_create_batch_refuses_an_id_given_twice(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    handle = env.get("order-pipeline")

    with pytest.raises(InstanceIdConflictError) as refused:
        await handle.create_batch(
            [
                {"params": {"order_id": "a", "amount": 1}, "id": "a"},
                {"params": {"order_id": "b", "amount": 1}, "id": "dup"},
                {"params": {"order_id": "c", "amount": 2}, "id": "dup"},
            ]
        )

    assert str(refused.value) == (
        "id 'dup' is given twice in one batch (items 1 and 2); nothing was stored"
    )
    assert (await handle.list()).instances == []


async def test_create_batch_names_every_invalid_item_and_stores_none(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    handle = env.get("order-pipeline")

    with pytest.raises(ValidationError) as invalid:
        await handle.create_batch(
            [
                {"params": {"order_id": "ok", "amount": 1}},
                {"params": {"order_id": "neg", "amount": -1}},
                {"params": {"amount": 2}},
            ]
        )
    with pytest.raises(InvalidInstanceIdError, match=r"^item 1 of the batch: invalid instance id"):
        await handle.create_batch(
            [{"params": {"order_id": "a", "amount": 1}, "id": "a"}, {"params": None, "id": "a b"}]
        )

    assert [e["loc"] for e in invalid.value.errors()] == [(1, "amount"), (2, "order_id")]
    assert (await handle.list()).instances == []


async def test_invalid_params_are_rejected_and_nothing_is_stored(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    handle = env.get("order-pipeline")

    with pytest.raises(ValidationError) as error:
        await handle.create({"order_id": "o-1", "amount": -3}, id="bad")
    with pytest.raises(ValidationError):
        await handle.create_batch(
            [{"params": {"order_id": "ok", "amount": 1}}, {"params": {"amount": 2}}]
        )

    assert error.value.errors()[0]["loc"] == ("amount",)
    assert (await handle.list()).instances == []
    with pytest.raises(InstanceNotFoundError):
        await handle.get("bad")


async def test_params_over_the_payload_limit_are_refused(make_env: MakeEnv) -> None:
    env = await make_env(
        {"order_pipeline_workflow.py": ORDERS}, settings="[runtime]\npayload_limit = 200\n"
    )
    handle = env.get("order-pipeline")

    with pytest.raises(PayloadTooLargeError, match="over the limit of 200 bytes"):
        await handle.create({"order_id": "o-1", "amount": 1, "note": "x" * 300})
    assert (await handle.list()).instances == []


async def test_create_batch_list_pagination_and_get(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    handle = env.get("order-pipeline")

    created = await handle.create_batch(
        [{"params": {"order_id": f"o-{n}", "amount": n + 1}, "id": f"o-{n}"} for n in range(5)]
    )
    first = await handle.list(limit=2)
    second = await handle.list(limit=2, cursor=first.next_cursor)
    third = await handle.list(limit=2, cursor=second.next_cursor)

    assert [i.id for i in created] == [f"o-{n}" for n in range(5)]
    seen = [s.id for page in (first, second, third) for s in page.instances]
    assert seen == ["o-4", "o-3", "o-2", "o-1", "o-0"]
    assert third.next_cursor is None
    assert (await handle.get("o-3")).id == "o-3"


async def test_result_timeout_and_typed_output(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    instance = await env.get("order-pipeline").create({"order_id": "o-9", "amount": 1})

    with pytest.raises(ResultTimeoutError, match="still"):
        await instance.result(timeout=0.3)
    await instance.send_event("release")
    output = await instance.result(timeout=10)

    assert type(output).__name__ == "OrderResult" and output.receipt_id == "rc-o-9"
    status = await instance.status()
    assert status.version is not None and status.output == output


async def test_unknown_workflow_names_close_matches(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})

    with pytest.raises(UnknownWorkflowError, match="did you mean 'order-pipeline'"):
        env.get("order-pipelin")


async def test_generated_package_gives_the_same_handles(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    generated = importlib.import_module(f"{env.app.package}._generated")

    instance = await generated.workflows.get("order-pipeline").create(
        {"order_id": "g", "amount": 1}
    )

    assert generated.env.ORDER_PIPELINE_WORKFLOW.name == "order-pipeline"
    assert (await env.get("order-pipeline").get(instance.id)).id == instance.id


async def test_closing_an_app_closes_the_store_its_sync_handles_opened(
    tmp_path: Path, database_url: str, sqlite_connections: OpenedConnections
) -> None:
    root = write_app(tmp_path, {"order_pipeline_workflow.py": ORDERS})
    app = App(root, database=database_url)
    handle = app.handle("order-pipeline")
    await handle.create({"order_id": "a-1", "amount": 3}, id="a-1")  # this loop's store
    await asyncio.to_thread(handle.sync.create, {"order_id": "s-1", "amount": 3}, id="s-1")

    await app.close()

    assert connections_left(database_url, sqlite_connections) == []


async def test_sync_facade(make_env: MakeEnv) -> None:
    env = await make_env({"order_pipeline_workflow.py": ORDERS})
    handle = env.get("order-pipeline").sync

    def use_sync() -> object:
        instance = handle.create({"order_id": "s-1", "amount": 3}, id="s-1")
        again = handle.create({"order_id": "s-1", "amount": 3}, id="s-1")
        assert (instance.created, again.created, again.params_match) == (True, False, True)
        with pytest.raises(InstanceStateError):
            instance.retry_now()  # it waits for no retry
        instance.send_event("release")
        return instance.result(timeout=10)

    output = await asyncio.to_thread(use_sync)

    assert output.receipt_id == "rc-s-1"  # type: ignore[attr-defined]


LOGGER = """
from framework import workflow, WorkflowContext

@workflow
async def logger(ctx: WorkflowContext[None]) -> None:
    ctx.log.info("hello", n=1)
"""


async def test_the_sync_facade_has_every_method_of_the_instance_logs_too(make_env: MakeEnv) -> None:
    env = await make_env({"logger_workflow.py": LOGGER})
    instance = await env.get("logger").create(None, id="l-1")
    await instance.result(timeout=10)

    lines = await asyncio.to_thread(instance.sync.logs)

    assert [(line.message, line.fields) for line in lines] == [("hello", {"n": 1})]
    assert lines == await instance.logs()


WAITER = """
from framework import workflow, WorkflowContext

def one() -> int:
    return 1

@workflow
async def waiter(ctx: WorkflowContext[None]) -> int:
    await ctx.step.do("one", one)
    return await ctx.step.wait_for_event("go", type="go")
"""


async def test_arguments_a_type_checker_would_refuse_are_clear_errors_at_run_time(
    make_env: MakeEnv,
) -> None:
    """For callers without a type checker (or with data from elsewhere): before, an int id
    read "expected string or bytes-like object", an int event type "'int' object is not
    iterable", a misspelt batch key started an instance with a random id, an unknown status
    listed nothing, and a restart from a step name with a NUL or half a surrogate pair was a
    StoreError on PostgreSQL and a UnicodeEncodeError on SQLite."""
    env = await make_env({"waiter_workflow.py": WAITER})
    handle = env.get("waiter")
    instance = await env.start("waiter", None, id="w-1")
    await env.wait_for(instance, "waiting", timeout=60)

    with pytest.raises(InvalidInstanceIdError, match="invalid instance id 5: it is of type int"):
        await handle.create(None, id=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="item 0 of the batch has unknown key 'idd'; did you"):
        await handle.create_batch([{"params": None, "idd": "x"}])  # type: ignore[typeddict-unknown-key]
    with pytest.raises(TypeError, match="item 1 of the batch is of type str, not a dict"):
        await handle.create_batch([{"params": None}, "w-2"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown status 'runing'; use one of queued"):
        await handle.list(status="runing")
    with pytest.raises(ValueError, match="limit 0 is not a number of instances"):
        await handle.list(limit=0)
    with pytest.raises(TypeError, match="event type 5 is of type int, not str"):
        await instance.send_event(5, {})
    for step in ("one\x00", "\ud800"):
        with pytest.raises(UnknownStepError, match=r"has no step .* its steps: one, go"):
            await instance.restart(from_step=step)

    assert [i.id for i in (await handle.list()).instances] == ["w-1"]
    await instance.send_event("go", 7)
    assert await instance.result(timeout=60) == 7
