"""JSON that could not be read back is refused at every door, on both stores.

pydantic's JSON reader stops at 200 levels of nesting, and JSON has no NaN or infinity (pydantic
would write them as null). Params, step results, workflow outputs, event payloads, children's
params and a reusable step's arguments are all checked before they are stored; rows stored
before that check are shown as unreadable, never raised from a status or a step timeline.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from framework import InstanceFailedError, SerializationError
from framework.store.base import NewInstance
from framework.testing import WorkflowTestEnv
from tests.runtime.conftest import MakeEnv

SHAPES = """
from __future__ import annotations

from typing import Any
from pydantic import BaseModel
from framework import StepContext, define_step

class Node(BaseModel):
    child: Node | None = None

class Priced(BaseModel):
    price: float

def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value

def deep_result() -> Any:
    return nested(250)

def nan_result() -> dict[str, Any]:
    return {"price": [1.0, float("nan")]}

async def keep(ctx: StepContext, data: Any) -> int:
    return 1

keep_step = define_step("keep", handler=keep)
"""

HEADER = """
from typing import Any
from framework import workflow, WorkflowContext
from .shapes import Node, Priced, nested, deep_result, nan_result, keep_step
"""

DOORS = {
    "shapes.py": SHAPES,
    "waiter_workflow.py": HEADER + """
@workflow
async def waiter(ctx: WorkflowContext[Any]) -> Any:
    return await ctx.step.wait_for_event("go", type="go")
""",
    "tree_workflow.py": HEADER + """
@workflow
async def tree(ctx: WorkflowContext[Node]) -> int:
    return 1
""",
    "priced_workflow.py": HEADER + """
@workflow
async def priced(ctx: WorkflowContext[Priced]) -> float:
    return ctx.params.price
""",
    "step_out_workflow.py": HEADER + """
@workflow
async def step_out(ctx: WorkflowContext[str]) -> Any:
    return await ctx.step.do("make", deep_result if ctx.params == "deep" else nan_result)
""",
    "output_workflow.py": HEADER + """
@workflow
async def output(ctx: WorkflowContext[str]) -> Any:
    return nested(250) if ctx.params == "deep" else float("inf")
""",
    "spawner_workflow.py": HEADER + """
@workflow
async def spawner(ctx: WorkflowContext[None]) -> None:
    await ctx.spawn("waiter", nested(250))
""",
    "step_args_workflow.py": HEADER + """
@workflow
async def step_args(ctx: WorkflowContext[None]) -> int:
    return await ctx.run_step(keep_step, {"data": nested(250)})
""",
}


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels around 0: ``depth`` levels of JSON arrays."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def tree(depth: int) -> dict[str, Any]:
    """Params of the recursive ``Node`` model, ``depth`` objects deep."""
    node: dict[str, Any] = {}
    for _ in range(depth - 1):
        node = {"child": node}
    return node


async def doors(make_env: MakeEnv) -> WorkflowTestEnv:
    return await make_env(DOORS)


async def errored_with(env: WorkflowTestEnv, workflow: str, params: Any) -> str:
    """Run an instance that must end errored by a SerializationError; return the message."""
    instance = await env.start(workflow, params)
    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)
    status = await instance.status()
    assert status.error is not None and status.error.name == "SerializationError", status.error
    assert [s.attempts for s in await instance.steps() if s.status == "errored"] in ([], [1])
    return status.error.message


async def test_params_nested_past_the_limit_are_refused_and_nothing_is_stored(
    make_env: MakeEnv,
) -> None:
    env = await doors(make_env)

    with pytest.raises(SerializationError) as deep:
        await env.start("waiter", nested(250), id="deep")
    with pytest.raises(SerializationError, match="nested 210 levels deep, over the limit of 200"):
        await env.start("tree", tree(210))
    with pytest.raises(SerializationError, match=r"item 1 \(id 'b'\) of a batch") as batch:
        await env.get("waiter").create_batch(
            [{"params": 1, "id": "a"}, {"params": nested(201), "id": "b"}]
        )

    assert str(deep.value) == (
        "the params of workflow 'waiter' is JSON nested 250 levels deep, over the limit of 200 "
        "levels of arrays and objects that fw can read back; flatten it, or store it elsewhere "
        "and pass a reference"
    )
    assert "nested 201 levels deep" in str(batch.value)
    for name in ("waiter", "tree"):
        assert (await env.get(name).list()).instances == []
    at_the_limit = await env.start("waiter", nested(200), id="limit")
    await at_the_limit.send_event("go", nested(200))
    assert await at_the_limit.result(timeout=30) == nested(200)
    assert (await at_the_limit.status()).params == nested(200)
    assert await env.run("tree", tree(200)) == 1


async def test_non_finite_numbers_are_refused_naming_where_they_are(make_env: MakeEnv) -> None:
    env = await doors(make_env)

    with pytest.raises(SerializationError, match=r"non-finite number \(NaN or infinity\) at a\[1\]"):
        await env.start("waiter", {"a": [1, math.nan]})
    with pytest.raises(SerializationError, match="at price: JSON has no such numbers"):
        await env.start("priced", {"price": math.inf})
    with pytest.raises(SerializationError, match="the params of item 0 of a batch"):
        await env.get("priced").create_batch([{"params": {"price": -math.inf}}])

    assert (await env.get("waiter").list()).instances == []
    assert (await env.get("priced").list()).instances == []
    assert await env.run("priced", {"price": 2.5}) == 2.5


async def test_an_event_payload_that_could_not_be_read_back_is_refused(make_env: MakeEnv) -> None:
    env = await doors(make_env)
    instance = await env.start("waiter", None, id="w-1")

    with pytest.raises(SerializationError, match="the payload of event 'go' is JSON nested 250"):
        await instance.send_event("go", nested(250))
    with pytest.raises(SerializationError, match=r"payload of event 'go' holds .* at x\.y"):
        await instance.send_event("go", {"x": {"y": math.nan}})

    await instance.send_event("go", {"ok": True})
    assert await instance.result(timeout=30) == {"ok": True}


async def test_step_results_outputs_children_and_step_arguments_are_checked(
    make_env: MakeEnv,
) -> None:
    env = await doors(make_env)

    deep_step = await errored_with(env, "step-out", "deep")
    nan_step = await errored_with(env, "step-out", "nan")
    deep_output = await errored_with(env, "output", "deep")
    inf_output = await errored_with(env, "output", "inf")
    child = await errored_with(env, "spawner", None)
    arguments = await errored_with(env, "step-args", None)

    assert "the output of step 'make'" in deep_step and "nested 250 levels deep" in deep_step
    assert "the output of step 'make'" in nan_step and "at price[1]" in nan_step
    assert "the output of instance" in deep_output and "over the limit of 200" in deep_output
    assert "is a non-finite number (NaN or infinity)" in inf_output
    assert "the params of child 'waiter'" in child and "nested 250 levels deep" in child
    assert "the arguments of step 'keep'" in arguments and "nested 251 levels" in arguments
    assert (await env.get("waiter").list()).instances == []


async def test_an_unreadable_event_stored_before_the_check_fails_only_its_instance(
    make_env: MakeEnv,
) -> None:
    env = await doors(make_env)
    instance = await env.start("waiter", None, id="old-event")
    store = await env.app.store()

    # As fw stored it before refusing such payloads at the door.
    await store.send_event("old-event", "go", "[" * 250 + "]" * 250, env.clock.now())

    with pytest.raises(InstanceFailedError) as failed:
        await instance.result(timeout=30)
    assert failed.value.error.message.startswith(
        "the stored JSON of the event payload taken by 'go' is nested deeper than 200 levels, "
        "more than fw can read"
    )
    status = await instance.status()
    assert status.status == "errored" and status.unreadable == {}
    (wait,) = await instance.steps()
    assert (wait.name, wait.output) == ("go", None)
    assert "nested deeper than 200 levels" in wait.unreadable["output"]


async def test_params_stored_before_the_check_end_the_instance_instead_of_parking_it(
    make_env: MakeEnv,
) -> None:
    env = await doors(make_env)
    store = await env.app.store()
    deep = "[" * 250 + "]" * 250
    version = env.app.version_of("waiter")

    await store.create_instances([NewInstance("old", "waiter", deep, env.clock.now(), version)])
    instance = await env.get("waiter").get("old")

    with pytest.raises(InstanceFailedError, match="the stored JSON of its params is nested deeper"):
        await instance.result(timeout=30)
    status = await instance.status()
    assert status.params is None
    assert "nested deeper than 200 levels" in status.unreadable["params"]
    assert status.error is not None and "more than fw can read" in status.error.message


def test_the_check_holds_whatever_a_model_writes_and_lets_ordinary_json_through() -> None:
    from pydantic import BaseModel, ConfigDict

    from framework.runtime.serialization import dump

    class AsStrings(BaseModel):
        model_config = ConfigDict(ser_json_inf_nan="strings")
        x: float

    class AsConstants(BaseModel):
        model_config = ConfigDict(ser_json_inf_nan="constants")
        values: list[float]

    with pytest.raises(SerializationError, match="at x:"):
        dump(AsStrings(x=math.nan), AsStrings, None, "strings")
    with pytest.raises(SerializationError, match=r"at values\[1\]:"):
        dump(AsConstants(values=[1.0, -math.inf]), AsConstants, None, "constants")
    text = '{"note":"NaN, Infinity and [[[{{{ in a string","none":null,"x":1.5}'
    assert dump({"note": "NaN, Infinity and [[[{{{ in a string", "none": None, "x": 1.5}, Any,
                None, "plain") == text
    wide = [{"n": n, "tags": ["a"]} for n in range(500)]  # many brackets, shallow
    assert len(dump(wide, Any, None, "wide")) > 5000


async def test_integers_too_long_to_read_back_are_refused_at_every_door(
    make_env: MakeEnv,
) -> None:
    """pydantic writes an int of any length but reads back at most 4,300 digits: a longer
    one in params, an event payload, a step result or an output is refused, not stored."""
    env = await make_env({**DOORS, "long_workflow.py": HEADER + """
def long_result() -> Any:
    return {"n": [1, 10**5000]}

@workflow
async def long(ctx: WorkflowContext[str]) -> Any:
    if ctx.params == "step":
        return await ctx.step.do("make", long_result)
    return -10**4400
"""})
    longest = 10**4300 - 1  # 4,300 digits: read back as written

    with pytest.raises(SerializationError, match=r"an integer of more than 4,300 digits at a\[1\]"):
        await env.start("waiter", {"a": [1, 10**4300]}, id="long-params")
    assert (await env.get("waiter").list()).instances == []
    instance = await env.start("waiter", {"n": longest}, id="w-long")
    with pytest.raises(SerializationError, match="the payload of event 'go' is an integer of"):
        await instance.send_event("go", 10**4300)
    await instance.send_event("go", {"n": -longest})
    assert await instance.result(timeout=30) == {"n": -longest}

    step = await errored_with(env, "long", "step")
    output = await errored_with(env, "long", "output")

    assert "the output of step 'make'" in step and "digits at n[1]: JSON readers" in step
    assert "the output of instance" in output and "is an integer of more than 4,300" in output
