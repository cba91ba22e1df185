"""What generated code imports at run time: entrypoint classes, ``workflows`` and ``env``.

Deliberately light (standard library only): importing an app's ``_generated`` package costs
the same for 3 workflows or 3,000. Workflow modules, pydantic and the store load on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from framework.runtime.app import App
    from framework.runtime.handles import WorkflowHandle


class Entrypoint:
    """A generated entrypoint class: where the runtime finds one workflow's code."""

    name: ClassVar[str]
    binding: ClassVar[str]
    module: ClassVar[str]
    attribute: ClassVar[str]
    file: ClassVar[str]

    @classmethod
    def load(cls) -> Any:
        """Import the workflow's module and return the decorated function or class."""
        module = importlib.import_module(cls.module)
        try:
            return getattr(module, cls.attribute)
        except AttributeError:
            raise ImportError(
                f"{cls.file}: no {cls.attribute!r} in {cls.module}; run `fw codegen` again"
            ) from None


class AppRef:
    """The app a generated package belongs to, resolved on first use."""

    def __init__(self, generated_file: str) -> None:
        self.root = Path(generated_file).resolve().parent.parent

    @property
    def app(self) -> App:
        from framework.runtime.app import App

        return App.for_root(self.root)


class WorkflowRegistry:
    """``workflows``: typed handles by workflow name (the generated stub adds the types)."""

    def __init__(self, ref: AppRef) -> None:
        self._ref = ref

    def get(self, name: str) -> WorkflowHandle[Any, Any]:
        """The handle of workflow ``name``; an unknown name raises with close matches."""
        return self._ref.app.handle(name)

    def get_dynamic(self, name: str) -> WorkflowHandle[Any, Any]:
        """Like ``get``, for names only known at run time (typed ``str``)."""
        return self._ref.app.handle(name)

    def names(self) -> list[str]:
        """The declared workflow names, sorted."""
        return sorted(self._ref.app.entrypoints)


class Bindings:
    """``env``: one handle per workflow, by binding (``env.ORDER_PIPELINE_WORKFLOW``)."""

    def __init__(self, ref: AppRef) -> None:
        self._ref = ref

    def __getattr__(self, binding: str) -> WorkflowHandle[Any, Any]:
        if binding.startswith("_"):
            raise AttributeError(binding)
        app = self._ref.app
        for entrypoint in app.entrypoints.values():
            if entrypoint.binding == binding:
                return app.handle(entrypoint.name)
        raise AttributeError(f"no workflow is bound as {binding!r}; run `fw codegen`")

    def __dir__(self) -> list[str]:
        return sorted(e.binding for e in self._ref.app.entrypoints.values())
