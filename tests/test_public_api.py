"""The public API: ``framework``, ``framework.http``, ``framework.testing`` and
``framework.client``.

Each lists its names once, in the ``TYPE_CHECKING`` block of its ``__init__``, which type
checkers read and ``framework.exports`` serves at run time: these tests hold the two views to
each other, check that every name imports, and that importing a package stays light. (That
mypy and pyright resolve the names with their full types: ``tests/typing_cases``.)
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import framework
import framework.client
import framework.http
import framework.testing
from framework.exports import read_exports

PUBLIC_PACKAGES = (framework, framework.http, framework.testing, framework.client)


def declared(package: ModuleType) -> dict[str, str]:
    """Name -> module, from the package's TYPE_CHECKING block, read here on its own."""
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text())
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
        if node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1
    return {
        alias.name: line.module
        for line in blocks[0].body
        if isinstance(line, ast.ImportFrom) and line.module
        for alias in line.names
    }


@pytest.mark.parametrize("package", PUBLIC_PACKAGES, ids=lambda p: p.__name__)
def test_all_is_the_type_checking_block(package: ModuleType) -> None:
    names = declared(package)

    assert package.__all__ == list(names)
    assert read_exports(package.__name__) == names
    assert set(names) <= set(dir(package))
    assert len(names) == len(set(names))


@pytest.mark.parametrize("package", PUBLIC_PACKAGES, ids=lambda p: p.__name__)
def test_every_public_name_imports_from_its_module(package: ModuleType) -> None:
    for name, module in declared(package).items():
        value = getattr(package, name)

        assert value is getattr(importlib.import_module(module), name)
        assert getattr(value, "__name__", name) == name


def test_a_star_import_binds_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from framework import *", namespace)

    assert set(framework.__all__) <= set(namespace)
    assert namespace["workflow"] is framework.workflow


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'framework' has no attribute 'wokflow'"):
        _ = framework.wokflow  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="cannot import name 'wokflow'"):
        exec("from framework.http import wokflow", {})


def test_every_fw_error_a_public_function_raises_is_public() -> None:
    import framework.errors

    internal = {
        "AmbiguousInstanceIdError",  # the CLI's id prefixes only
        "LeaseLostError",
        "ListenError",
        "ScaffoldError",
        "StoreClosedError",  # a StoreError (public), told apart only inside fw
        "StoreUnavailableError",
    }
    errors = {
        name
        for name, value in vars(framework.errors).items()
        if isinstance(value, type) and issubclass(value, BaseException)
        if value.__module__ == "framework.errors"
    }

    assert errors - internal - {"InjectedFailure"} <= set(framework.__all__)
    assert "InjectedFailure" in framework.testing.__all__


def test_importing_the_public_packages_imports_nothing_heavy() -> None:
    stages = (
        "import framework, framework.http, framework.testing, framework.client",
        "import framework.testing.plugin",  # what pytest loads in every session
        "framework.workflow",
    )
    script = "import sys\n" + "".join(
        f"{stage}\nprint(' '.join(sorted(sys.modules)), end='|')\n" for stage in stages
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    packages, plugin, used = (set(part.split()) for part in done.stdout.split("|")[:3])

    assert {m for m in packages if m.startswith("framework")} == {
        "framework",
        "framework.client",
        "framework.exports",
        "framework.http",
        "framework.resources",
        "framework.testing",
    }
    heavy = ("ast", "pathlib", "pydantic", "starlette", "psycopg", "jinja2", "libcst", "uvicorn")
    assert {m for m in packages if m.split(".")[0] in heavy} == set()
    assert {m for m in plugin if m.startswith(("framework.runtime", "pydantic"))} == set()
    assert "framework.runtime.definition" in used


def test_a_block_with_anything_but_re_exports_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "fw_probe_package"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from json import dumps as dumps\n"
        "    from json import loads\n"
        "if not TYPE_CHECKING:\n"
        "    from framework import exports\n"
        "    __getattr__, __dir__ = exports.lazy_exports(__name__)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module("fw_probe_package")
    try:
        with pytest.raises(ImportError, match=r"__init__.py:4: .* only `from <module> import"):
            _ = probe.dumps
    finally:
        del sys.modules["fw_probe_package"]
