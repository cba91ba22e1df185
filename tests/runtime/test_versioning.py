"""Changing workflow code while instances are in flight: each way users change code, with
instances parked at each wait, on both stores. The journal decides: instances whose journal
the new code still matches go on; the others are held with a NonDeterminismError, and no
step ever runs twice."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from framework import Instance, InstanceFailedError
from framework.testing import WorkflowTestEnv
from tests.runtime.conftest import MakeEnv

HEADER = """
import os
from framework import workflow, WorkflowContext

def effect(name: str) -> str:
    with open(os.environ["FW_EFFECTS"], "a") as log:
        log.write(name + "\\n")
    return name

@workflow
async def evolving(ctx: WorkflowContext[None]) -> list[str]:
    i = ctx.instance_id
"""

V1 = """
    out = [await ctx.step.do("a", effect, f"{i} a")]
    await ctx.step.wait_for_event("w1", type="go")
    out.append(await ctx.step.do("b", effect, f"{i} b"))
    await ctx.step.wait_for_event("w2", type="go")
    out.append(await ctx.step.do("c", effect, f"{i} c"))
    return out
"""

CHANGES = {
    "step-added": V1.replace(
        '    await ctx.step.wait_for_event("w2"',
        '    out.append(await ctx.step.do("x", effect, f"{i} x"))\n    await ctx.step.wait_for_event("w2"',
    ),
    "step-added-at-end": V1.replace(
        "    return out", '    out.append(await ctx.step.do("d", effect, f"{i} d"))\n    return out'
    ),
    "step-removed": V1.replace('    out.append(await ctx.step.do("b", effect, f"{i} b"))\n', ""),
    "step-renamed": V1.replace(
        'ctx.step.do("b", effect, f"{i} b")', 'ctx.step.do("b2", effect, f"{i} b")'
    ),
    "steps-reordered": V1.replace(
        '    out.append(await ctx.step.do("b", effect, f"{i} b"))\n    await ctx.step.wait_for_event("w2", type="go")\n',
        '    await ctx.step.wait_for_event("w2", type="go")\n    out.append(await ctx.step.do("b", effect, f"{i} b"))\n',
    ),
    "patched": V1.replace(
        '    await ctx.step.wait_for_event("w2"',
        '    if ctx.patched("add-x"):\n        out.append(await ctx.step.do("x", effect, f"{i} x"))\n'
        '    await ctx.step.wait_for_event("w2"',
    ),
}

HELD = "held"
EXPECTED = {  # change -> (parked at w1, parked at w2, started after the change)
    "step-added": (["a", "b", "x", "c"], HELD, ["a", "b", "x", "c"]),
    "step-added-at-end": (["a", "b", "c", "d"], ["a", "b", "c", "d"], ["a", "b", "c", "d"]),
    "step-removed": (["a", "c"], HELD, ["a", "c"]),
    "step-renamed": (["a", "b", "c"], HELD, ["a", "b", "c"]),
    "steps-reordered": (["a", "b", "c"], HELD, ["a", "b", "c"]),
    "patched": (["a", "b", "x", "c"], ["a", "b", "c"], ["a", "b", "x", "c"]),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_code_changed_under_instances_in_flight(
    change: str, make_env: MakeEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    effects = tmp_path / "effects.log"
    monkeypatch.setenv("FW_EFFECTS", str(effects))
    env = await make_env({"evolving_workflow.py": HEADER + V1})
    at_w1 = await env.start("evolving", id="at-w1")
    at_w2 = await env.start("evolving", id="at-w2")
    await _parked(at_w1, steps=2)
    await _parked(at_w2, steps=2)
    await at_w2.send_event("go")
    await _parked(at_w2, steps=4)
    old_version = (await at_w1.status()).version

    _rewrite(env, HEADER + CHANGES[change])
    fresh = await env.start("evolving", id="fresh")
    outcomes = [await _drive(instance) for instance in (at_w1, at_w2, fresh)]

    assert outcomes == list(EXPECTED[change])
    runs = Counter(effects.read_text().split("\n")[:-1])
    assert max(runs.values()) == 1, f"a step ran twice: {runs}"
    assert (await fresh.status()).version != old_version


async def test_nondeterminism_can_hold_instances_paused_instead(
    make_env: MakeEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FW_EFFECTS", str(tmp_path / "effects.log"))
    env = await make_env(
        {"evolving_workflow.py": HEADER + V1}, settings='[runtime]\non_nondeterminism = "block"\n'
    )
    instance = await env.start("evolving", id="blocked")
    await _parked(instance, steps=2)
    await instance.send_event("go")
    await _parked(instance, steps=4)

    _rewrite(env, HEADER + CHANGES["step-renamed"])
    await instance.send_event("go")
    status = await _settled(instance, ("paused", "errored", "complete"))

    assert status.status == "paused"
    assert status.error is not None and status.error.name == "NonDeterminismError"
    assert "'b2'" in status.error.message and "'b'" in status.error.message

    _rewrite(env, HEADER + V1)  # deploy the old code again for it
    await instance.resume()
    assert await instance.result(timeout=20) == ["blocked a", "blocked b", "blocked c"]


def _rewrite(env: WorkflowTestEnv, source: str) -> None:
    path = env.app.root / "workflows" / "evolving_workflow.py"
    path.write_text(textwrap.dedent(source))
    env.app.reload()


async def _parked(instance: Instance[object], steps: int) -> None:
    for _ in range(1000):
        status = await instance.status()
        if status.status == "waiting" and len(await instance.steps()) >= steps:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{instance.id} never parked with {steps} steps")


async def _settled(
    instance: Instance[object],
    statuses: tuple[str, ...] = ("complete", "errored", "paused", "waiting"),
) -> object:
    for _ in range(1000):
        status = await instance.status()
        if status.status in statuses:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"{instance.id} never settled")


async def _drive(instance: Instance[object]) -> list[str] | str:
    """Send `go` to each wait until the instance ends; its step names, or HELD."""
    for _ in range(5):
        status = await _settled(instance)
        if status.status == "waiting":  # type: ignore[attr-defined]
            before = len(await instance.steps())
            await instance.send_event("go")
            for _ in range(1000):
                current = await instance.status()
                if current.status != "waiting" or len(await instance.steps()) > before:
                    break
                await asyncio.sleep(0.01)
            continue
        break
    try:
        output = await instance.result(timeout=10)
    except InstanceFailedError as failed:
        assert failed.error.name == "NonDeterminismError", failed.error
        return HELD
    assert isinstance(output, list)
    return [word.split()[1] for word in output]
