"""Lazy re-exports: a public package lists its API once and imports each name on first use.

The one list is the ``if TYPE_CHECKING:`` block of the package's ``__init__``: one
``from <module> import <name> as <name>`` line per public name. Type checkers read the block as
written, so they see every name with its full type. At run time the block does not run:
``lazy_exports`` reads the same lines from the package's source when a name is first asked for,
and imports that name from its module then, so importing the package imports nothing else
(scientific-python's ``lazy_loader`` reads a stub file the same way). The package ends with::

    if not TYPE_CHECKING:
        from framework import exports

        __getattr__, __dir__ = exports.lazy_exports(__name__)

Hidden from type checkers, that ``__getattr__`` cannot make an unknown name look valid to them:
``from framework import wokflow`` is an error in mypy and pyright, and an ``AttributeError``
at run time. ``__all__`` (for ``from framework import *``) is served by ``__getattr__`` too.

A base module: it imports nothing of fw.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ast


class _Exports:
    """The public names of one package, read from its source on first use."""

    def __init__(self, package: str) -> None:
        self.package = package
        self._modules: dict[str, str] | None = None

    @property
    def modules(self) -> dict[str, str]:
        """Public name -> the module it is imported from, in the block's order."""
        if self._modules is None:
            self._modules = read_exports(self.package)
        return self._modules

    def getattr(self, name: str) -> Any:
        if name == "__all__":
            value: Any = list(self.modules)
        elif name in self.modules:
            value = getattr(importlib.import_module(self.modules[name]), name)
        else:
            raise AttributeError(f"module {self.package!r} has no attribute {name!r}")
        setattr(sys.modules[self.package], name, value)  # later lookups skip __getattr__
        return value

    def dir(self) -> list[str]:
        return sorted({*vars(sys.modules[self.package]), *self.modules})


def lazy_exports(package: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` (its ``__name__``), which
    serve the names its ``if TYPE_CHECKING:`` block re-exports, and ``__all__``."""
    exports = _Exports(package)
    return exports.getattr, exports.dir


def read_exports(package: str) -> dict[str, str]:
    """Public name -> module, from the ``if TYPE_CHECKING:`` block of ``package``'s source.

    Raises:
        ImportError: the source cannot be read, or the block holds anything but
            ``from <module> import <name> as <name>`` lines (the message names file and line).
    """
    import ast  # loads with the first name asked for, not with the package

    file, source = _source_of(sys.modules[package])
    names: dict[str, str] = {}
    for node in ast.parse(source, file).body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for line in node.body:
            if not (
                isinstance(line, ast.ImportFrom)
                and line.level == 0
                and line.module
                and all(alias.asname == alias.name for alias in line.names)
            ):
                raise ImportError(
                    f"{file}:{line.lineno}: the TYPE_CHECKING block of a package's public "
                    "names holds only `from <module> import <name> as <name>` lines"
                )
            names.update((alias.name, line.module) for alias in line.names)
    return names


def _source_of(module: ModuleType) -> tuple[str, str]:
    """The file name and source text of ``module``: read from its file, or from its loader
    (a zip archive)."""
    file: str = getattr(module, "__file__", None) or module.__name__
    try:
        with open(file, encoding="utf-8") as text:
            return file, text.read()
    except OSError:
        pass
    loader = module.__spec__.loader if module.__spec__ else None
    get_source = getattr(loader, "get_source", None)
    source = get_source(module.__name__) if get_source is not None else None
    if not isinstance(source, str):
        raise ImportError(
            f"{module.__name__}: its public names are read from its source ({file}), which "
            "cannot be read"
        )
    return file, source


def _is_type_checking(test: ast.expr) -> bool:
    import ast

    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
