"""Studio's login sessions: revocable, and shared by every server process using the store.

Logging in creates a session: a random secret sent to the browser in an HttpOnly cookie as
``<secret>.<signature>``. The store keeps only a SHA-256 of the secret, with its expiry, so
reading the database gives no one a login. A cookie counts while its signature (an HMAC under
a key derived from the token) holds and the store still has its session: logging out deletes
the session, so its cookie stops working in every process sharing the store at once, and
changing the token breaks every signature, which logs everyone out. A session lasts
``SESSION_LIFETIME``; the cookie carries the same ``Max-Age``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from framework.http.state import HttpState
from framework.store.base import Store

SESSION_LIFETIME = 7 * 24 * 3600
"""Seconds a login lasts (7 days)."""
_COOKIE = re.compile(r"([A-Za-z0-9_-]{43})\.([0-9a-f]{64})")


async def start_session(state: HttpState, store: Store) -> str:
    """Store a new session; return the cookie value that stands for it."""
    secret = secrets.token_urlsafe(32)
    now = time.time()
    await store.create_session(_key(secret), now, now + SESSION_LIFETIME)
    return f"{secret}.{_signature(state, secret)}"


async def session_active(state: HttpState, store: Store, cookie: str) -> bool:
    """Whether ``cookie`` is the value of a session that is still stored and unexpired.

    A value that is not of the cookie's shape, or whose signature fails, is refused without
    reading the store.
    """
    secret = _verified_secret(state, cookie)
    return secret is not None and await store.session_active(_key(secret), time.time())


async def end_session(state: HttpState, store: Store, cookie: str) -> None:
    """Delete the session ``cookie`` stands for (nothing when it stands for none)."""
    secret = _verified_secret(state, cookie)
    if secret is not None:
        await store.delete_session(_key(secret))


def _verified_secret(state: HttpState, cookie: str) -> str | None:
    found = _COOKIE.fullmatch(cookie)
    if found is None:
        return None
    secret, signature = found.groups()
    return secret if hmac.compare_digest(signature, _signature(state, secret)) else None


def _signature(state: HttpState, secret: str) -> str:
    return state.sign(f"fw-studio-session:v2:{secret}")


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
