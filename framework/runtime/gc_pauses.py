"""Keeping the garbage collector's longest pauses off a worker's event loop.

A full collection walks every object the process holds (fw, pydantic's schemas, psycopg, the
app's modules: some 50,000 objects, 25-30 ms here), and while it runs the event loop runs
nothing, so a timer due meanwhile fires that much later. A worker under load made one every
second or so. What a process has loaded by the time its first worker starts lives as long as
the process, so the worker freezes it then (``gc.freeze``) and later collections skip it.
Frozen objects are still freed as soon as nothing refers to them; only a reference cycle among
them is never collected.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_loaded_objects() -> None:
    """Collect once, then freeze what the process holds; the first call of a process only."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()  # garbage of the start (imports, the migration) is freed, not frozen
    gc.freeze()
