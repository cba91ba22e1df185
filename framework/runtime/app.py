"""An app at run time: its settings, its workflows (loaded lazily from the generated
entrypoints), its clock and its store."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.app_root import package_name
from framework.errors import ConfigError, UnknownWorkflowError
from framework.runtime.clock import Clock
from framework.runtime.config import AppConfig, database_url, load_config
from framework.runtime.definition import WorkflowDefinition, as_definition
from framework.runtime.entrypoint import Entrypoint
from framework.runtime.facade_loop import close_at_exit, facade_loop
from framework.runtime.metrics import ProcessMetrics
from framework.runtime.retries import RetryPolicy
from framework.runtime.row_reads import RowReads
from framework.runtime.signals import InstanceSignals

if TYPE_CHECKING:
    from framework.runtime.concurrency import Concurrency
    from framework.runtime.handles import Instance, WorkflowHandle
    from framework.runtime.handoff import HandoffTaker
    from framework.runtime.hooks import AttemptHook
    from framework.store.base import InstanceRow, Store

_apps: dict[Path, App] = {}
_apps_lock = threading.Lock()
VERSION_RECHECK = 1.0
"""Seconds between two looks at a workflow's file for its code version (``version_of``)."""


class App:
    """One app: the folder holding ``fw.toml`` and its generated package."""

    def __init__(
        self, root: Path, *, clock: Clock | None = None, database: str | None = None
    ) -> None:
        self.root = root.resolve()
        self.package = package_name(self.root)
        self.settings: AppConfig = load_config(self.root)
        self.clock = clock or Clock()
        self.database_url = database or database_url(self.root, self.settings)
        self.local_workers = 0
        """Workers running in this process (their ends of instances are signalled)."""
        self.handoffs: list[HandoffTaker] = []
        """Workers of this process that take the instances created here (``handoff.py``)."""
        self.signals = InstanceSignals()
        """In-process notices of instances that ended, for ``result()``."""
        self.metrics = ProcessMetrics()
        """This process's counters and histograms (``/metrics``)."""
        self.attempt_hook: AttemptHook | None = None
        """Consulted before each step attempt: the test environment's planned failures."""
        self._entrypoints: dict[str, type[Entrypoint]] | None = None
        self._definitions: dict[str, WorkflowDefinition] = {}
        self._versions: dict[str, tuple[float, int, str]] = {}
        """Per workflow: when its file was last looked at (monotonic), its mtime, its hash."""
        self._retry_policies: dict[str, RetryPolicy] = {}
        self._step_timeouts: dict[str, float] = {}
        self._concurrency: dict[str, Concurrency] | None = None
        self._stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopStore] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def for_root(cls, root: Path) -> App:
        """The app of ``root`` in this process (created on first use)."""
        found = _apps.get(root)  # a root already resolved, as the HTTP app keeps it
        if found is not None:
            return found
        key = root.resolve()
        with _apps_lock:
            app = _apps.get(key)
            if app is None:
                app = _apps[key] = cls(key)
            return app

    def install(self) -> App | None:
        """Make this the app that ``for_root`` (and so the generated package) returns;
        return the one it replaces. The test fixture uses this."""
        with _apps_lock:
            previous = _apps.get(self.root)
            _apps[self.root] = self
            return previous

    def uninstall(self, previous: App | None) -> None:
        """Undo ``install``."""
        with _apps_lock:
            if previous is None:
                _apps.pop(self.root, None)
            else:
                _apps[self.root] = previous

    # Workflows.

    @property
    def entrypoints(self) -> dict[str, type[Entrypoint]]:
        """Workflow name -> generated entrypoint class."""
        if self._entrypoints is None:
            self._ensure_importable()
            module_name = f"{self.package}._generated.entrypoints"
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name is not None and module_name.startswith(exc.name):
                    raise ConfigError(
                        f"{self.root}: no generated package; run `fw codegen --app {self.root}`"
                    ) from None
                raise
            self._entrypoints = dict(module.ENTRYPOINTS)
        return self._entrypoints

    def definition(self, name: str) -> WorkflowDefinition:
        """The definition of workflow ``name``, importing its module on first use.

        Raises:
            UnknownWorkflowError: no workflow has that name (with close matches).
            WorkflowImportError: its module fails to import (with the file and line).
        """
        found = self._definitions.get(name)
        if found is not None:
            return found
        entrypoint = self.entrypoints.get(name)
        if entrypoint is None:
            raise UnknownWorkflowError(name, self.entrypoints)
        from framework.runtime.loading import load_workflow

        definition = as_definition(load_workflow(self.root, entrypoint))
        if definition is None:
            raise ConfigError(
                f"{entrypoint.file}: {entrypoint.attribute!r} is not a workflow; run `fw codegen`"
            )
        self._definitions[name] = definition
        return definition

    def version_of(self, name: str) -> str:
        """The code version of workflow ``name``: a hash of its file as it is now.

        The file is looked at (its modification time) at most once every
        ``VERSION_RECHECK`` seconds per workflow, not on every create: an edit shows within
        that time, and at once after ``reload`` (which ``fw dev`` calls after codegen).
        """
        now = time.monotonic()
        cached = self._versions.get(name)
        if cached is not None and now - cached[0] < VERSION_RECHECK:
            return cached[2]
        entrypoint = self.entrypoints.get(name)
        if entrypoint is None:
            raise UnknownWorkflowError(name, self.entrypoints)
        path = self.root / entrypoint.file
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return "missing"
        if cached is None or cached[1] != stamp:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        else:
            digest = cached[2]
        self._versions[name] = (now, stamp, digest)
        return digest

    def reload(self) -> None:
        """Forget loaded workflow code and settings, so the next use reads the files as they
        are now (``fw dev`` calls this after each good codegen run). The database stays."""
        self.settings = load_config(self.root)
        self._retry_policies.clear()
        self._step_timeouts.clear()
        self._concurrency = None
        prefix = f"{self.package}."
        for module in [m for m in sys.modules if m.startswith(prefix) or m == self.package]:
            del sys.modules[module]
        importlib.invalidate_caches()
        self._entrypoints = None
        self._definitions.clear()
        self._versions.clear()

    @property
    def env(self) -> Any:
        """The generated ``env`` of this app: a handle per binding."""
        self._ensure_importable()
        return importlib.import_module(f"{self.package}._generated").env

    def handle(self, name: str) -> WorkflowHandle[Any, Any]:
        """The handle of workflow ``name``."""
        from framework.runtime.handles import WorkflowHandle

        if name not in self.entrypoints:
            raise UnknownWorkflowError(name, self.entrypoints)
        return WorkflowHandle(self, name)

    def instance_handle(self, workflow: str, instance_id: str) -> Instance[Any, Any]:
        """A handle of an instance known to exist."""
        from framework.runtime.handles import Instance

        return Instance(self, workflow, instance_id)

    # Settings.

    def default_retries(self, workflow: str) -> RetryPolicy:
        """The retry policy of a step that names none, field by field: the workflow's
        ``@workflow(retries=...)``, else its ``[[workflows]] retries``, else
        ``[defaults.retries]``."""
        policy = self._retry_policies.get(workflow)
        if policy is None:
            policy = self._retry_policies[workflow] = self._resolve_retries(workflow)
        return policy

    def _resolve_retries(self, workflow: str) -> RetryPolicy:
        section = self.settings.defaults.retries
        custom = self.settings.workflow_settings(workflow)
        if custom is not None and custom.retries is not None:
            section = custom.retries.over(section)
        configured = RetryPolicy(
            section.limit,
            section.delay,
            section.backoff,
            section.max_delay,
            factor=section.factor,
            jitter=section.jitter,
        )
        return RetryPolicy.resolve(self.definition(workflow).retries, configured)

    def step_timeout(self, workflow: str) -> float:
        """The limit of one attempt of a step of ``workflow`` that names none: its
        ``[[workflows]] timeout``, else ``[defaults] timeout``."""
        limit = self._step_timeouts.get(workflow)
        if limit is None:
            custom = self.settings.workflow_settings(workflow)
            limit = self.settings.defaults.timeout
            if custom is not None and custom.timeout is not None:
                limit = custom.timeout
            self._step_timeouts[workflow] = limit
        return limit

    def deadline(self, workflow: str) -> float | None:
        """The longest an instance of ``workflow`` may run, in seconds (None: no limit):
        its ``@workflow(timeout=...)``, else its ``[[workflows]] deadline``, else
        ``[defaults] deadline``."""
        declared = self.definition(workflow).deadline
        if declared is not None:
            return declared
        custom = self.settings.workflow_settings(workflow)
        if custom is not None and custom.deadline is not None:
            return custom.deadline
        return self.settings.defaults.deadline

    @property
    def concurrency_limits(self) -> dict[str, Concurrency]:
        """The limited workflows and their limits (``runtime/concurrency.py``), by name."""
        if self._concurrency is None:
            from framework.runtime.concurrency import limits_of

            self._concurrency = limits_of(self.entrypoints, self.settings)
        return self._concurrency

    @property
    def default_timeout(self) -> float:
        """The time limit of one attempt of a step that names none."""
        return self.settings.defaults.timeout

    # The store.

    async def store(self) -> Store:
        """The store of this app for the running event loop, opened on first use."""
        loop = asyncio.get_running_loop()
        holder = self._stores.get(loop)
        if holder is None:
            holder = self._stores[loop] = _LoopStore()
        async with holder.lock:
            if holder.store is None:
                from framework.store import open_store

                store = open_store(self.database_url)
                await store.open()
                holder.store = store
        return holder.store

    async def awaited_row(self, instance_id: str, first: bool = False) -> InstanceRow | None:
        """The row of an instance being awaited (``result()``), read in one query with the
        other awaited rows of this moment (``row_reads.py``); a wait's ``first`` read is
        not held back to space the rounds."""
        loop = asyncio.get_running_loop()
        holder = self._stores.setdefault(loop, _LoopStore())
        if holder.reads is None:
            holder.reads = RowReads(self.store)
        return await holder.reads.read(instance_id, urgent=first)

    async def close(self) -> None:
        """Close the store of the running event loop, and the one the synchronous facade
        (``.sync`` handles) opened on its own loop, if any."""
        holder = self._stores.pop(asyncio.get_running_loop(), None)
        if holder is not None and holder.store is not None:
            await holder.store.close()
        sync_loop = facade_loop()
        if (
            sync_loop is not None
            and sync_loop is not asyncio.get_running_loop()
            and sync_loop in self._stores
            and sync_loop.is_running()
        ):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.close(), sync_loop))

    def _ensure_importable(self) -> None:
        parent = str(self.root.parent)
        if not self.package.isidentifier():
            raise ConfigError(
                f"{self.root}: the app folder's name {self.package!r} is not a Python package "
                "name; rename it (letters, digits and underscores)"
            )
        if parent not in sys.path and os.path.realpath(parent) not in map(
            os.path.realpath, sys.path
        ):
            sys.path.insert(0, parent)


async def close_stores() -> None:
    """Close the store every app of this process opened on the running event loop.

    The CLI calls this as each command ends, and the sync facade as the process exits.
    """
    with _apps_lock:
        apps = list(_apps.values())
    for app in apps:
        await app.close()


close_at_exit(close_stores)


class _LoopStore:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.store: Store | None = None
        self.reads: RowReads | None = None
