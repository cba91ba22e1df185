"""fw's remote client: the typed handles of an app, over its HTTP API (``fw serve``), for a
process without database access. Use the ``connect`` of the app's generated package (typed per
workflow); ``connect`` here is its untyped form. See docs/client.md.

Names load on first use (see ``framework.exports``): importing this package imports nothing.
A contract with generated code, like ``framework.runtime.registry``: each app's
``_generated/client.py`` imports ``Client`` and ``RemoteWorkflowHandle`` from here by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.client.handles import Client as Client
    from framework.client.handles import RemoteInstance as RemoteInstance
    from framework.client.handles import RemoteWorkflowHandle as RemoteWorkflowHandle
    from framework.client.handles import RemoteWorkflows as RemoteWorkflows
    from framework.client.handles import connect as connect
    from framework.client.sync import SyncRemoteInstance as SyncRemoteInstance
    from framework.client.sync import SyncRemoteWorkflowHandle as SyncRemoteWorkflowHandle

if not TYPE_CHECKING:
    from framework import exports

    __getattr__, __dir__ = exports.lazy_exports(__name__)
