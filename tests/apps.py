"""Building throwaway apps for tests: fw.toml, workflow files and their generated package."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path


def write_app(
    parent: Path, workflows: dict[str, str], settings: str = "", name: str | None = None
) -> Path:
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
