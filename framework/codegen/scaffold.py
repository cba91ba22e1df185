"""Scaffolds: a new app (``fw init``), workflow (``fw new workflow``) and step (``fw new step``),
each rendered from ``templates/scaffold/``."""

from __future__ import annotations

import keyword
from pathlib import Path

from framework.app_root import CONFIG_FILE
from framework.codegen.render import render_template
from framework.codegen.run import scan_app
from framework.errors import ScaffoldError
from framework.naming import class_name_for, identifier_for, name_problem

WORKFLOWS_DIR = "workflows"
STEPS_DIR = "steps"


def init_app(directory: Path, name: str | None = None) -> list[Path]:
    """Create an app in ``directory``: fw.toml, packages, .gitignore (files that already exist,
    other than fw.toml, are kept). Returns what was written."""
    root = directory.resolve()
    if (root / CONFIG_FILE).exists():
        raise ScaffoldError(f"{directory}: already an fw app ({CONFIG_FILE} exists)")
    if not root.name.isidentifier() or keyword.iskeyword(root.name):
        raise ScaffoldError(
            f"{directory}: the app folder's name {root.name!r} must be a Python package name "
            "(letters, digits and underscores, not starting with a digit), as workflows are "
            f"imported as {root.name}.workflows...; pick another folder name"
        )
    app_name = name or root.name
    files = {
        root / CONFIG_FILE: render_template("scaffold/fw.toml.j2", name=app_name),
        root / "__init__.py": _package_init(f"The fw app {app_name}."),
        root / WORKFLOWS_DIR / "__init__.py": _package_init("Workflows: one per *_workflow.py."),
        root / ".gitignore": render_template("scaffold/gitignore.j2"),
    }
    return _write_new({path: text for path, text in files.items() if not path.exists()})


def new_workflow(root: Path, name: str, folder: str = WORKFLOWS_DIR) -> Path:
    """Write ``<folder>/<name>_workflow.py`` (function form) and return its path."""
    _check_name(name, "workflow")
    existing = {w.name: w for w in scan_app(root).workflows}
    if name in existing:
        found = existing[name]
        raise ScaffoldError(f"workflow {name!r} already exists: {found.file}:{found.line}")
    prefix = class_name_for(name).removesuffix("Workflow")
    text = render_template(
        "scaffold/workflow.py.j2",
        name=name,
        function=_python_name(identifier_for(name)),
        prefix=prefix,
        article="an" if name[0] in "aeiou" else "a",
    )
    target = _target_folder(root, folder) / f"{identifier_for(name)}_workflow.py"
    _write_new({target: text})
    return target


def new_step(root: Path, name: str, folder: str = STEPS_DIR) -> Path:
    """Write ``<folder>/<name>.py``, a reusable step with a handler and a rollback."""
    _check_name(name, "step")
    function = _python_name(identifier_for(name))
    text = render_template(
        "scaffold/step.py.j2",
        name=name,
        function=function,
        definition=f"{identifier_for(name)}_step",
        prefix=class_name_for(name).removesuffix("Workflow"),
    )
    target = _target_folder(root, folder) / f"{identifier_for(name)}.py"
    _write_new({target: text})
    return target


def _check_name(name: str, what: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise ScaffoldError(problem.replace("workflow name", f"{what} name", 1))


def _python_name(identifier: str) -> str:
    """A function name for ``identifier``, avoiding keywords (``import`` -> ``import_``)."""
    return f"{identifier}_" if keyword.iskeyword(identifier) else identifier


def _target_folder(root: Path, folder: str) -> Path:
    """``root/folder``, created as packages (with ``__init__.py``) where missing."""
    target = (root / folder).resolve()
    if not target.is_relative_to(root):
        raise ScaffoldError(f"{folder}: not inside the app {root}")
    bad = [part for part in target.relative_to(root).parts if not part.isidentifier()]
    if bad:
        raise ScaffoldError(f"{folder}: {bad[0]!r} is not a Python package name")
    current = root
    for part in target.relative_to(root).parts:
        current = current / part
        if not current.exists():
            current.mkdir()
            init = current / "__init__.py"
            init.write_text(_package_init(f"The {part} package."), encoding="utf-8")
    return target


def _package_init(docstring: str) -> str:
    return render_template("scaffold/package_init.py.j2", docstring=docstring)


def _write_new(files: dict[Path, str]) -> list[Path]:
    """Write files that must not exist yet (nothing is written if one does)."""
    for path in files:
        if path.exists():
            raise ScaffoldError(f"{path}: already exists; not overwriting it")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
