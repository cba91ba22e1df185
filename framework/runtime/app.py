"""An app at run time: its settings, its workflows (loaded lazily from the generated
entrypoints), its clock and its store."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.app_root import package_name
from framework.errors import ConfigError, UnknownWorkflowError
from framework.runtime.clock import Clock
from framework.runtime.config import AppConfig, RetriesSection, database_url, load_config
from framework.runtime.definition import WorkflowDefinition, as_definition
from framework.runtime.retries import RetryPolicy
from framework.runtime.signals import InstanceSignals

if TYPE_CHECKING:
    from framework.runtime.handles import Instance, WorkflowHandle
    from framework.runtime.hooks import AttemptHook
    from framework.runtime.registry import Entrypoint
    from framework.store.base import Store

_apps: dict[Path, App] = {}
_apps_lock = threading.Lock()


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
        self.signals = InstanceSignals()
        """In-process notices of instances that ended, for ``result()``."""
        self.attempt_hook: AttemptHook | None = None
        """Consulted before each step attempt: the test environment's planned failures."""
        self._entrypoints: dict[str, type[Entrypoint]] | None = None
        self._definitions: dict[str, WorkflowDefinition] = {}
        self._versions: dict[str, tuple[int, str]] = {}
        self._retry_policies: dict[str, RetryPolicy] = {}
        self._stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopStore] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def for_root(cls, root: Path) -> App:
        """The app of ``root`` in this process (created on first use)."""
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
        """
        found = self._definitions.get(name)
        if found is not None:
            return found
        entrypoint = self.entrypoints.get(name)
        if entrypoint is None:
            raise UnknownWorkflowError(name, self.entrypoints)
        definition = as_definition(entrypoint.load())
        if definition is None:
            raise ConfigError(
                f"{entrypoint.file}: {entrypoint.attribute!r} is not a workflow; run `fw codegen`"
            )
        self._definitions[name] = definition
        return definition

    def version_of(self, name: str) -> str:
        """The code version of workflow ``name``: a hash of its file as it is now."""
        entrypoint = self.entrypoints.get(name)
        if entrypoint is None:
            raise UnknownWorkflowError(name, self.entrypoints)
        path = self.root / entrypoint.file
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return "missing"
        cached = self._versions.get(name)
        if cached is None or cached[0] != stamp:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            cached = self._versions[name] = (stamp, digest)
        return cached[1]

    def reload(self) -> None:
        """Forget loaded workflow code and settings, so the next use reads the files as they
        are now (``fw dev`` calls this after each good codegen run). The database stays."""
        self.settings = load_config(self.root)
        self._retry_policies.clear()
        prefix = f"{self.package}."
        for module in [m for m in sys.modules if m.startswith(prefix) or m == self.package]:
            del sys.modules[module]
        importlib.invalidate_caches()
        self._entrypoints = None
        self._definitions.clear()

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

    def instance_handle(self, workflow: str, instance_id: str) -> Instance[Any]:
        """A handle of an instance known to exist."""
        from framework.runtime.handles import Instance

        return Instance(self, workflow, instance_id)

    # Settings.

    def default_retries(self, workflow: str) -> RetryPolicy:
        """The retry policy of a step that names none: ``[[workflows]] retries`` of the
        workflow, else ``[defaults.retries]``."""
        policy = self._retry_policies.get(workflow)
        if policy is None:
            policy = self._retry_policies[workflow] = self._resolve_retries(workflow)
        return policy

    def _resolve_retries(self, workflow: str) -> RetryPolicy:
        section = self.settings.defaults.retries
        custom = self.settings.workflow_settings(workflow)
        extra = (custom.model_extra or {}) if custom is not None else {}
        if "retries" in extra:
            merged = {**section.model_dump(exclude_unset=True), **extra["retries"]}
            section = RetriesSection.model_validate(merged)
        return RetryPolicy(section.limit, section.delay, section.backoff, section.max_delay)

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

    async def close(self) -> None:
        """Close the store of the running event loop, and the one the synchronous facade
        (``.sync`` handles) opened on its own loop, if any."""
        holder = self._stores.pop(asyncio.get_running_loop(), None)
        if holder is not None and holder.store is not None:
            await holder.store.close()
        from framework.runtime.sync import facade_loop

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


class _LoopStore:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.store: Store | None = None
