"""Changing workflow code while instances are in flight: each way users change code, with
instances parked at each wait, on both stores. The journal decides: instances whose journal
the new code still matches go on; the others are held with a NonDeterminismError, and no
step ever runs twice."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

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
    await env.idle()
    await _parked(at_w1, steps=2)
    await _parked(at_w2, steps=2)
    await at_w2.send_event("go")
    await env.idle()
    await _parked(at_w2, steps=4)
    old_version = (await at_w1.status()).version

    _rewrite(env, HEADER + CHANGES[change])
    fresh = await env.start("evolving", id="fresh")
    outcomes = [await _drive(env, instance) for instance in (at_w1, at_w2, fresh)]

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
    await env.idle()
    await _parked(instance, steps=2)
    await instance.send_event("go")
    await env.idle()
    await _parked(instance, steps=4)

    _rewrite(env, HEADER + CHANGES["step-renamed"])
    await instance.send_event("go")
    await env.idle()
    status = await instance.status()

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


async def _parked(instance: Instance[Any, object], steps: int) -> None:
    """Assert that ``instance`` (the worker being idle) waits, with ``steps`` journaled."""
    assert (await instance.status()).status == "waiting"
    assert len(await instance.steps()) == steps


async def _drive(env: WorkflowTestEnv, instance: Instance[Any, object]) -> list[str] | str:
    """Send `go` to each wait until the instance ends; its step names, or HELD."""
    for _ in range(5):
        await env.idle()
        if (await instance.status()).status != "waiting":
            break
        await instance.send_event("go")
    try:
        output = await instance.result(timeout=10)
    except InstanceFailedError as failed:
        assert failed.error.name == "NonDeterminismError", failed.error
        return HELD
    assert isinstance(output, list)
    return [word.split()[1] for word in output]


async def test_an_instance_held_by_nondeterminism_shows_what_is_true(
    make_env: MakeEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    import httpx

    from framework.http import create_app

    monkeypatch.setenv("FW_EFFECTS", str(tmp_path / "effects.log"))
    env = await make_env({"evolving_workflow.py": HEADER + V1})
    instance = await env.start("evolving", id="held")
    await env.idle()
    await _parked(instance, steps=2)
    await instance.send_event("go")
    await env.idle()
    await _parked(instance, steps=4)
    old_version = (await instance.status()).version

    _rewrite(env, HEADER + CHANGES["step-renamed"])
    new_version = env.app.version_of("evolving")
    await instance.send_event("go")
    status = await env.wait_for(instance, "errored")

    # Ended: its wait for `go` waits for nothing any more, on every surface.
    assert status.error is not None and status.error.name == "NonDeterminismError"
    steps = {s.name: s.status for s in await instance.steps()}
    assert steps == {"a": "complete", "w1": "complete", "b": "complete", "w2": "stopped"}
    transport = httpx.ASGITransport(app=create_app(env.app, token=""))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        shown = (await client.get("/api/instances/held")).json()
    assert {s["name"]: s["status"] for s in shown["steps"]} == steps
    assert "waiting" not in _cli_show(env, database_url)

    # Restarted: it runs the new code, and says so.
    await instance.restart()
    assert (await instance.status()).version == new_version != old_version
    assert await _drive(env, instance) == ["a", "b", "c"]
    assert [s.name for s in await instance.steps()] == ["a", "w1", "b2", "w2", "c"]
    assert (await instance.status()).version == new_version


def _cli_show(env: WorkflowTestEnv, database_url: str) -> str:
    """``fw instance show held`` as a user runs it against the same store."""
    import os
    import subprocess
    import sys

    root = env.app.root
    environ = {**os.environ, "FW_DATABASE_URL": database_url}
    environ["PYTHONPATH"] = f"{root.parent}{os.pathsep}{Path.cwd()}"
    shown = subprocess.run(
        [sys.executable, "-m", "framework", "instance", "show", "held", "--app", str(root)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=30,
        check=True,
    )
    assert "stopped" in shown.stdout and "NonDeterminismError" in shown.stdout, shown
    return shown.stdout
