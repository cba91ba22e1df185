"""Run the code blocks of one Markdown page in a scratch folder, as a reader would (see
README "Docs are tested"). ``python -m tests.docs_runner PAGE SCRATCH``: exit 0 when every
block ran; else the failing block's line and error on stderr, exit 1."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\S+)[ \t]*(.*)$")
FILE_HEADER = re.compile(r"^# (\S+\.py)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its tags (the info string's other words), its text."""

    page: Path
    line: int
    language: str
    tags: frozenset[str]
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        text = "\n".join(lines[index + 1 : end]) + "\n"
        tags = frozenset(opened.group(2).split())
        found.append(Block(page, index + 1, opened.group(1), tags, text))
        index = end + 1
    return found


def runs(block: Block) -> bool:
    """Whether the docs test runs ``block``."""
    if block.language == "python":
        return "no-run" not in block.tags
    return block.language == "console" and "run" in block.tags


class Reader:
    """Follows one page in ``scratch``: runs its commands, saves its files, runs its code."""

    def __init__(self, scratch: Path, stack: contextlib.AsyncExitStack) -> None:
        self.scratch = scratch
        self.stack = stack
        self.env_open = False
        self.namespace: dict[str, object] = {"__name__": "__docs__"}
        self.tests: list[str] = []
        bin_dir = Path(sys.executable).parent
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FW_DATABASE")}
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["COLUMNS"] = "200"

    def app(self) -> Path:
        """The page's app: the one it made, else a copy of example_app."""
        from framework.app_root import apps_below

        made = apps_below(self.scratch)
        if made:
            return made[0]
        copy = self.scratch / "example_app"
        shutil.copytree(REPO / "example_app", copy, ignore=shutil.ignore_patterns(".fw", "__pycache__"))
        return copy

    async def follow(self, block: Block) -> None:
        if block.language == "console":
            self.run_commands(block)
        elif "pytest" in block.tags:
            self.tests.append(block.text)
        elif FILE_HEADER.match(block.text.splitlines()[0]):
            path = self.scratch / FILE_HEADER.match(block.text.splitlines()[0]).group(1)  # type: ignore[union-attr]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
        else:
            await self.run_code(block)

    def run_commands(self, block: Block) -> None:
        for line in block.text.splitlines():
            if not line.startswith("$ "):
                continue
            command = line[2:]
            done = subprocess.run(
                ["bash", "-c", command], cwd=self.scratch, env=self.env,
                capture_output=True, text=True, timeout=120,
            )
            if done.returncode != 0:
                raise AssertionError(f"`{command}` exited {done.returncode}:\n{done.stdout}{done.stderr}")

    async def run_code(self, block: Block) -> None:
        from framework.testing import workflow_test_env

        app = self.app()
        if str(app.parent) not in sys.path:
            sys.path.insert(0, str(app.parent))
        code = compile(block.text, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if not self.env_open:  # one test environment for the page: its blocks share instances
            await self.stack.enter_async_context(workflow_test_env(app))
            self.env_open = True
        outcome = eval(code, self.namespace)  # the docs' own code
        if asyncio.iscoroutine(outcome):
            await outcome

    def run_tests(self) -> None:
        if not self.tests:
            return
        app = self.app()
        (app / "tests").mkdir(exist_ok=True)
        (app / "tests" / "__init__.py").touch()
        module = app / "tests" / "test_from_docs.py"
        module.write_text("\n\n".join(textwrap.dedent(t) for t in self.tests))
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
            cwd=self.scratch, env=self.env, capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise AssertionError(f"pytest on the page's tests failed:\n{done.stdout}{done.stderr}")


async def follow_page(page: Path, scratch: Path) -> Reader | None:
    async with contextlib.AsyncExitStack() as stack:
        reader = Reader(scratch, stack)
        for block in blocks(page):
            if not runs(block):
                continue
            try:
                await reader.follow(block)
            except Exception as exc:
                print(f"{block.where}: {type(exc).__name__}: {exc}", file=sys.stderr)
                print(
                    "(a block not meant to run is marked: ```python no-run; see README.md, "
                    "'Docs are tested')",
                    file=sys.stderr,
                )
                return None
    return reader


def main(page: Path, scratch: Path) -> int:
    os.chdir(scratch)
    reader = asyncio.run(follow_page(page, scratch))
    if reader is None:
        return 1
    try:
        reader.run_tests()
    except AssertionError as exc:
        print(f"{page.relative_to(REPO)}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
