"""fw over HTTP: the JSON API and Studio (``create_app``), and live status for your own
pages (``workflow_status``, ``LiveStatusMiddleware``, ``register_jinja``).

Names load on first use, so ``framework.workflow_status`` does not import Starlette.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framework.http.app import create_app as create_app
    from framework.http.live import LiveStatus as LiveStatus
    from framework.http.live import LiveStatusMiddleware as LiveStatusMiddleware
    from framework.http.live import register_jinja as register_jinja
    from framework.http.live import workflow_status as workflow_status
    from framework.http.live import workflow_status_blocking as workflow_status_blocking
    from framework.http.state import HttpSettings as HttpSettings

_EXPORTS = {
    "framework.http.app": ["create_app"],
    "framework.http.live": [
        "LiveStatus",
        "LiveStatusMiddleware",
        "register_jinja",
        "workflow_status",
        "workflow_status_blocking",
    ],
    "framework.http.state": ["HttpSettings"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "HttpSettings",
    "LiveStatus",
    "LiveStatusMiddleware",
    "create_app",
    "register_jinja",
    "workflow_status",
    "workflow_status_blocking",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'framework.http' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
