"""Watch mode: regenerate when the app's files change (``fw dev``).

``CodegenWatcher`` runs codegen once, then again after every batch of changes to ``.py`` files,
``fw.toml`` or folders of the app (adds, edits, renames, deletes), ignoring ``_generated/``,
``.fw/``, hidden folders and virtual environments. Changes that arrive while codegen runs
trigger one more run. A broken file is reported and the watch goes on. Callers add their own
work in ``on_success`` (``fw dev`` reloads its worker there).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

from framework.app_root import CONFIG_FILE
from framework.codegen.discover import is_skipped_dir_name
from framework.codegen.run import CodegenResult, run_codegen

LOGGER = logging.getLogger("fw.codegen")

OnSuccess = Callable[[CodegenResult, frozenset[Path]], Awaitable[None] | None]
OnProblems = Callable[[CodegenResult], Awaitable[None] | None]


class AppChangeFilter:
    """Which file-system changes can matter to codegen or to loaded workflow code."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return False
        if not parts or any(is_skipped_dir_name(part) for part in parts):
            return False
        name = parts[-1]
        return name.endswith(".py") or name == CONFIG_FILE or "." not in name


class CodegenWatcher:
    """Regenerates an app's code whenever its files change, until stopped.

    Args:
        root: the app root (the folder holding fw.toml).
        on_success: called after each run without errors, with the result and the paths whose
            changes triggered it (empty for the first run).
        on_problems: called after each run with errors (nothing was written).
        step_ms: how long the file system must stay quiet before a batch of changes is handled.
    """

    def __init__(
        self,
        root: Path,
        *,
        on_success: OnSuccess | None = None,
        on_problems: OnProblems | None = None,
        step_ms: int = 50,
        force_polling: bool | None = None,
    ) -> None:
        self.root = root.resolve()
        self.on_success = on_success
        self.on_problems = on_problems
        self.step_ms = step_ms
        self.force_polling = force_polling
        self.runs = 0
        self._manifest: bytes | None = None
        self._pending: set[Path] = set()
        self._changed = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and regenerate until ``stop`` is set."""
        collector = asyncio.create_task(self._collect(stop))
        collector.add_done_callback(lambda _: stop.set())
        # Let the collector set its watches up first: a file added once the first run has
        # written its output (on a busy machine, before the collector ever ran) is seen.
        await asyncio.sleep(0)
        try:
            await self.regenerate(frozenset())
            while not stop.is_set():
                if not await _first_of(self._changed, stop):
                    break
                self._changed.clear()
                changed, self._pending = frozenset(self._pending), set()
                if not self._only_own_manifest_write(changed):
                    await self.regenerate(changed)
        finally:
            stop.set()
            await collector

    async def regenerate(self, changed: frozenset[Path]) -> CodegenResult | None:
        """Run codegen in a thread (the event loop keeps serving) and report the result."""
        self.runs += 1
        try:
            result = await asyncio.to_thread(run_codegen, self.root)
        except Exception:
            LOGGER.exception("fw codegen crashed; the watch goes on")
            return None
        self._manifest = _read(self.root / CONFIG_FILE)
        if result.ok:
            await _call(self.on_success, result, changed)
        else:
            await _call(self.on_problems, result)
        return result

    def _only_own_manifest_write(self, changed: frozenset[Path]) -> bool:
        """Whether the only change is codegen's own update of fw.toml (no run needed)."""
        manifest = self.root / CONFIG_FILE
        return changed == frozenset({manifest}) and _read(manifest) == self._manifest

    async def _collect(self, stop: asyncio.Event) -> None:
        async for changes in watchfiles.awatch(  # pyright: ignore[reportUnknownMemberType]
            self.root,
            watch_filter=AppChangeFilter(self.root),
            stop_event=stop,
            step=self.step_ms,
            force_polling=self.force_polling,
        ):
            self._pending.update(Path(path) for _, path in changes)
            self._changed.set()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


async def _first_of(changed: asyncio.Event, stop: asyncio.Event) -> bool:
    """Wait for a change or for the stop; True for a change."""
    waits = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return not stop.is_set()


async def _call(callback: Callable[..., Awaitable[None] | None] | None, *args: object) -> None:
    if callback is None:
        return
    outcome = callback(*args)
    if inspect.isawaitable(outcome):
        await outcome
