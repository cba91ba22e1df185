"""Hand-off of new instances to a worker of the creating process.

When ``create`` runs in a process whose worker (on the same store and event loop) has free
slots, the create's own transaction claims the new instances for that worker (a
``Handoff``), which starts them as soon as the create returns: no wake-up, no claim of its
own, no wait for a poll. The slots are reserved before the create and given back if it
fails, so a worker never runs more than its concurrency. Instances the worker cannot take
are created queued, and any worker claims them as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from framework.store.base import Claim, Created, Handoff, NewInstance, Store


class HandoffTaker(Protocol):
    """A worker of this process that takes instances created here (``Worker``)."""

    def reserve(self, store: Store, workflow: str, count: int) -> Handoff | None:
        """Up to ``count`` free slots for instances of ``workflow`` about to be created on
        ``store``."""
        ...

    def unreserve(self, handoff: Handoff) -> None:
        """Give back the slots of a create that failed."""
        ...

    async def adopt(self, store: Store, handoff: Handoff, claims: list[Claim]) -> None:
        """Run the instances the create claimed for it (gives back the slots)."""
        ...


async def create_instances(
    takers: Sequence[HandoffTaker], store: Store, new: Sequence[NewInstance]
) -> list[Created]:
    """``store.create_instances(new)``, handing what it can to one of ``takers``."""
    workflows = {i.workflow for i in new}
    workflow = workflows.pop() if len(workflows) == 1 else ""
    for taker in takers if workflow else ():
        handoff = taker.reserve(store, workflow, len(new))
        if handoff is not None:
            break
    else:
        return await store.create_instances(new)
    creating = asyncio.ensure_future(store.create_instances(new, handoff))
    try:
        created = await asyncio.shield(creating)
    except asyncio.CancelledError:
        # The caller gave up, but the create may still commit: its claims must be run (or
        # released) all the same, not left to wait for their lease to expire.
        creating.add_done_callback(lambda _: _adopt_late(taker, store, handoff, creating))
        raise
    except BaseException:
        taker.unreserve(handoff)
        raise
    await taker.adopt(store, handoff, _claims(created))
    return created


def _claims(created: list[Created]) -> list[Claim]:
    return [c.claim for c in created if c.claim is not None]


def _adopt_late(
    taker: HandoffTaker,
    store: Store,
    handoff: Handoff,
    creating: asyncio.Future[list[Created]],
) -> None:
    if creating.cancelled() or creating.exception() is not None:
        taker.unreserve(handoff)
        return
    adopting = asyncio.ensure_future(taker.adopt(store, handoff, _claims(creating.result())))
    _late.add(adopting)
    adopting.add_done_callback(_late.discard)


_late: set[asyncio.Future[None]] = set()  # keeps late adoptions alive until they ran
