"""What fw ships beside its code: its version and the folder of its Jinja2 templates.

A base module (it imports nothing of fw), so every layer may use it: codegen renders
``templates/codegen`` and ``templates/scaffold``, Studio ``templates/studio``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

VERSION = "0.1.0"
"""fw's version (``framework.__version__``; the OpenAPI document's ``info.version``)."""


def templates_dir() -> Path:
    """``framework/templates`` in an installed wheel, else the repository's ``templates/``."""
    from pathlib import Path  # not at the top: ``import framework`` reads VERSION, no more

    package_dir = Path(__file__).parent
    shipped = package_dir / "templates"
    return shipped if shipped.is_dir() else package_dir.parent / "templates"
