"""Building throwaway apps for tests: fw.toml, workflow files and their generated package."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path


def write_app(parent: Path, workflows: dict[str, str], settings: str = "", name: str | None = None) -> Path:
    """Write an app under ``parent`` and run codegen on it; return its root.

    ``workflows`` maps a path under ``workflows/`` (``"order_workflow.py"``) to its source.
    The package name is unique, so apps of several tests never share modules.
    """
    package = name or f"app_{uuid.uuid4().hex[:10]}"
    root = parent / package
    (root / "workflows").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "workflows" / "__init__.py").write_text("")
    (root / "fw.toml").write_text(f'[app]\nname = "{package}"\n' + textwrap.dedent(settings))
    for relative, source in workflows.items():
        path = root / "workflows" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    generate(root)
    return root


def generate(root: Path) -> None:
    """Run codegen on ``root``; fail the test on any codegen error."""
    from framework.codegen import run_codegen

    result = run_codegen(root)
    assert result.ok, result


def _fallback_generate(root: Path) -> None:  # TEMPORARY until framework.codegen lands
    import re

    from framework.naming import binding_for, class_name_for, name_from_file

    lines = ["from framework.runtime.registry import Entrypoint", ""]
    table = []
    for path in sorted((root / "workflows").rglob("*_workflow.py")):
        source = path.read_text()
        override = re.search(r'@workflow\(name="([^"]+)"', source)
        name = override.group(1) if override else name_from_file(path.name)
        attr = re.search(r"^(?:async def|class) (\w+)", source.split("@workflow", 1)[-1] if "@workflow" in source else source[source.index("(WorkflowEntrypoint") - 60:], re.M)
        if "@workflow" in source:
            attr = re.search(r"@workflow[^\n]*\n(?:async def|class) (\w+)", source)
        else:
            attr = re.search(r"^class (\w+)\(WorkflowEntrypoint", source, re.M)
        assert attr, path
        rel = path.relative_to(root).as_posix()
        module = ".".join([root.name, *path.relative_to(root).with_suffix("").parts])
        cls = class_name_for(name)
        lines += [f"class {cls}(Entrypoint):", f"    name = {name!r}", f"    binding = {binding_for(name)!r}",
                  f"    module = {module!r}", f"    attribute = {attr.group(1)!r}", f"    file = {rel!r}", ""]
        table.append(f"{name!r}: {cls}")
    lines.append("ENTRYPOINTS = {" + ", ".join(table) + "}")
    (root / "_generated").mkdir(exist_ok=True)
    (root / "_generated" / "entrypoints.py").write_text("\n".join(lines) + "\n")
    (root / "_generated" / "__init__.py").write_text(
        "from framework.runtime.registry import AppRef, Bindings, WorkflowRegistry\n"
        "_APP = AppRef(__file__)\nworkflows = WorkflowRegistry(_APP)\nenv = Bindings(_APP)\n"
    )


try:
    from framework.codegen import run_codegen as _probe  # noqa: F401
except ImportError:
    generate = _fallback_generate  # noqa: F811
