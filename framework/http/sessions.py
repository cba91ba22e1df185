"""Studio's login sessions: revocable, and shared by every server process using the store.

Logging in creates a session: a random secret sent to the browser in an HttpOnly cookie as
``<secret>.<signature>``. The store keeps only a SHA-256 of the secret, with its expiry, so
reading the database gives no one a login. A cookie counts while its signature (an HMAC under
a key derived from the token) holds and the store still has its session: logging out deletes
the session, so its cookie stops working in every process sharing the store at once, and
changing the token breaks every signature, which logs everyone out. A session lasts
``SESSION_LIFETIME``; the cookie carries the same ``Max-Age``.

A session opened with the read-only token (``FW_API_READ_TOKEN``) is signed for reading: its
signature also covers that token, so it reads everything and changes nothing, and changing the
read-only token logs those sessions out.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Literal

from framework.http.state import HttpState
from framework.store.base import Store

Access = Literal["full", "read"]
"""What a token or session allows: everything, or reading only."""

SESSION_LIFETIME = 7 * 24 * 3600
"""Seconds a login lasts (7 days)."""
_COOKIE = re.compile(r"([A-Za-z0-9_-]{43})\.([0-9a-f]{64})")


async def start_session(state: HttpState, store: Store, access: Access = "full") -> str:
    """Store a new session allowing ``access``; return the cookie value that stands for it."""
    secret = secrets.token_urlsafe(32)
    now = time.time()
    await store.create_session(_key(secret), now, now + SESSION_LIFETIME)
    return f"{secret}.{_signature(state, secret, access)}"


async def session_access(state: HttpState, store: Store, cookie: str) -> Access | None:
    """What the session ``cookie`` stands for allows, None when it is not a session that is
    still stored and unexpired.

    A value that is not of the cookie's shape, or whose signature fails, is refused without
    reading the store.
    """
    verified = _verified_secret(state, cookie)
    if verified is None:
        return None
    secret, access = verified
    return access if await store.session_active(_key(secret), time.time()) else None


async def session_active(state: HttpState, store: Store, cookie: str) -> bool:
    """Whether ``cookie`` is the value of a session that is still stored and unexpired."""
    return await session_access(state, store, cookie) is not None


async def end_session(state: HttpState, store: Store, cookie: str) -> None:
    """Delete the session ``cookie`` stands for (nothing when it stands for none)."""
    verified = _verified_secret(state, cookie)
    if verified is not None:
        await store.delete_session(_key(verified[0]))


def _verified_secret(state: HttpState, cookie: str) -> tuple[str, Access] | None:
    found = _COOKIE.fullmatch(cookie)
    if found is None:
        return None
    secret, signature = found.groups()
    for access in ("full", "read"):
        expected = _signature(state, secret, access)
        if expected and hmac.compare_digest(signature, expected):
            return secret, access
    return None


def _signature(state: HttpState, secret: str, access: Access) -> str:
    if access == "full":
        return state.sign(f"fw-studio-session:v2:{secret}")
    read_token = state.settings.read_token
    return state.sign(f"fw-studio-session:v2:read:{read_token}:{secret}") if read_token else ""


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
