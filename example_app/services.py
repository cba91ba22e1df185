"""Stand-ins for the outside world the example workflows talk to: a payment provider, an
inventory, an image service. Each records its calls, so tests can see what ran."""

from __future__ import annotations

import asyncio
import hashlib

from pydantic import BaseModel

CALLS: list[str] = []


class Receipt(BaseModel):
    id: str
    amount: int
    idempotency_key: str


class PaymentDeclined(Exception):
    """The card was declined: retrying will not help."""


async def charge_card(order_id: str, amount: int, idempotency_key: str) -> Receipt:
    """Charge a card; the provider deduplicates by ``idempotency_key``."""
    CALLS.append(f"charge {order_id} {amount}")
    await asyncio.sleep(0.01)
    if amount > 1_000_000:
        raise PaymentDeclined(f"amount {amount} is over the card's limit")
    return Receipt(id=f"rcpt-{order_id}", amount=amount, idempotency_key=idempotency_key)


async def refund_card(receipt_id: str, amount: int) -> str:
    CALLS.append(f"refund {receipt_id} {amount}")
    return f"refund-{receipt_id}"


def image_labels(url: str) -> list[str]:
    """A (deterministic) image tagger."""
    CALLS.append(f"tag {url}")
    digest = hashlib.sha256(url.encode()).hexdigest()
    words = ["cat", "dog", "tree", "car", "sky", "sea", "city", "food"]
    return sorted({words[int(c, 16) % len(words)] for c in digest[:3]})


def thumbnail(url: str, width: int) -> str:
    CALLS.append(f"thumbnail {url} {width}")
    return f"{url}?w={width}"
