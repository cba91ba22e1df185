"""fw over HTTP: the JSON API and Studio (``create_app``), and live status for your own
pages (``workflow_status``, ``LiveStatusMiddleware``, ``register_jinja``).

Names load on first use (see ``framework.exports``), so ``framework.workflow_status`` does
not import Starlette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.http.app import create_app as create_app
    from framework.http.live import LiveStatus as LiveStatus
    from framework.http.live import LiveStatusMiddleware as LiveStatusMiddleware
    from framework.http.live import register_jinja as register_jinja
    from framework.http.live import workflow_status as workflow_status
    from framework.http.live import workflow_status_blocking as workflow_status_blocking
    from framework.http.state import HttpSettings as HttpSettings

if not TYPE_CHECKING:
    from framework import exports

    __getattr__, __dir__ = exports.lazy_exports(__name__)
