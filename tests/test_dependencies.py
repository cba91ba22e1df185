"""Every package fw's code imports is one of its declared dependencies, so fw installed as
the README says (`pip install /path/to/fw`) runs every documented feature. Before, the
generated remote client's httpx was only in the `dev` extra: `connect()` in a user's venv
raised ModuleNotFoundError."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import framework

PACKAGE = Path(framework.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"

OPTIONAL = {"opentelemetry": "otel"}
"""Imported only when installed (tracing), and the extra that installs it."""

UNDER_PYTEST = {"pytest", "pytest_asyncio", "pluggy"}
"""Imported only by ``framework.testing``, the pytest plugin, which runs under pytest."""


def requirements_of(names: set[str]) -> set[str]:
    """``names`` and every distribution they require, installed here (extras included:
    ``psycopg[binary,pool]`` brings psycopg-pool)."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            base, _, marker = requirement.partition(";")
            if "extra ==" in marker and name != "psycopg":
                continue
            pending.append(normalized(re.split(r"[\s<>=!~\[(]", base.strip())[0]))
    return seen


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "framework"}


def test_every_package_fw_imports_is_a_declared_dependency() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    declared = {normalized(re.split(r"[\s<>=!~\[;]", d)[0]) for d in project["dependencies"]}
    installed_with_fw = requirements_of(declared)
    distributions = importlib.metadata.packages_distributions()

    missing: list[str] = []
    for module in sorted(imported_top_level_modules()):
        if module in OPTIONAL:
            assert OPTIONAL[module] in project["optional-dependencies"]
            continue
        if module in UNDER_PYTEST:
            continue
        names = {normalized(d) for d in distributions.get(module, [module])}
        if not names & installed_with_fw:
            missing.append(f"{module} ({', '.join(sorted(names))})")
    assert missing == [], f"imported by framework/ but not in [project] dependencies: {missing}"
