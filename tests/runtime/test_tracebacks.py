"""Stored tracebacks start at the user's code: the frames of fw (and of the standard library
that called the user's code) are left out, on both stores, for steps and workflow bodies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from framework import InstanceFailedError
from framework.runtime.failures import traceback_of
from tests.runtime.conftest import MakeEnv

LOUD = """
import json

from framework import workflow, WorkflowContext

def inner() -> None:
    raise ValueError("boom")

def shout() -> None:
    inner()

def parse() -> None:
    try:
        json.loads("{")
    except ValueError as exc:
        raise LookupError("could not parse") from exc

@workflow
async def loud(ctx: WorkflowContext[str]) -> None:
    if ctx.params == "step":
        await ctx.step.do("shout", shout)
    if ctx.params == "chained":
        await ctx.step.do("parse", parse)
    inner()
"""
SETTINGS = "[defaults.retries]\nlimit = 1\n"
FRAME = re.compile(r'^  File "([^"]+)", line \d+, in (\S+)$', re.MULTILINE)
FW_DIR = str(Path(__file__).resolve().parents[2] / "framework")


def frames(traceback: str | None) -> list[tuple[str, str]]:
    """(file name, function) of every frame of a formatted traceback."""
    assert traceback is not None
    return [(Path(path).name, function) for path, function in FRAME.findall(traceback)]


@pytest.mark.parametrize("where", ["step", "body"])
async def test_a_stored_traceback_starts_at_the_users_frame(make_env: MakeEnv, where: str) -> None:
    env = await make_env({"loud_workflow.py": LOUD}, SETTINGS)
    instance = await env.start("loud", where, id=f"loud-{where}")
    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)

    if where == "step":
        (step,) = await instance.steps()
        assert step.error is not None
        traceback = step.error.traceback
        expected = [("loud_workflow.py", "shout"), ("loud_workflow.py", "inner")]
    else:
        status = await instance.status()
        assert status.error is not None
        traceback = status.error.traceback
        expected = [("loud_workflow.py", "loud"), ("loud_workflow.py", "inner")]
    assert frames(traceback) == expected
    assert traceback is not None and FW_DIR not in traceback
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert traceback.rstrip().endswith("ValueError: boom")


async def test_chained_exceptions_keep_the_standard_librarys_frames_inside_user_code(
    make_env: MakeEnv,
) -> None:
    env = await make_env({"loud_workflow.py": LOUD}, SETTINGS)
    instance = await env.start("loud", "chained", id="loud-chained")
    with pytest.raises(InstanceFailedError):
        await instance.result(timeout=30)

    (step,) = await instance.steps()
    assert step.error is not None and step.error.traceback is not None
    shown = frames(step.error.traceback)
    assert shown[0] == ("loud_workflow.py", "parse")  # the cause's stack, then the error's
    assert ("decoder.py", "decode") in shown  # json's own frames, called by the user
    assert shown[-1] == ("loud_workflow.py", "parse")
    assert FW_DIR not in step.error.traceback
    assert "The above exception was the direct cause" in step.error.traceback


def test_a_traceback_without_a_user_frame_keeps_all_its_frames() -> None:
    from framework.runtime.durations import parse_duration

    try:
        parse_duration("soon")
    except ValueError as exc:
        inside_fw = exc.with_traceback(exc.__traceback__.tb_next if exc.__traceback__ else None)
        shown = frames(traceback_of(inside_fw))
    assert shown == [("durations.py", "parse_duration"), ("durations.py", "_parse_text")]
