"""Studio's form flash: a rejected form's input and errors, carried across its redirect.

Studio's forms post, then redirect (303) to a page (post-redirect-get), so the address bar,
a reload (F5) and the page's live refresh always hold a page's address, never a form's. A
rejected form redirects to its page with ``?form=<nonce>`` and sets the ``fw_form`` cookie:
the form's kind and target (a workflow, an instance), what the user typed and the errors,
compressed and signed under the server's key, for ``FLASH_LIFETIME`` seconds. The page shows
them while its address names the cookie's nonce, so a reload shows them again and a later
visit (no ``form``) shows a fresh form. Stateless, so any server process reads it; an input
too large for a cookie is dropped, saying so next to its field.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hmac
import itertools
import json
import secrets
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from starlette.requests import Request
from starlette.responses import RedirectResponse

from framework.http.security import cookie_path
from framework.http.state import HttpState

FLASH_COOKIE = "fw_form"
FLASH_LIFETIME = 600
"""Seconds a rejected form's input is kept (10 minutes)."""
COOKIE_BUDGET = 3800
"""Bytes the cookie's value may take (browsers keep 4096 per cookie, name included)."""
KEEP_BUDGET = 16 * COOKIE_BUDGET
"""Characters of input worth trying to fit in the cookie: what people type does not compress
sixteenfold, so larger inputs are dropped without compressing them."""
MAX_MESSAGES = 5
"""Errors kept per field (then "and N more")."""
FORM_PARAM = "form"
Kind = Literal["start", "event", "control"]
GENERAL = ""
"""The error key of the form as a whole."""


@dataclass
class Flash:
    """A rejected form: what was typed (by input name) and the errors (by key; ``""``: the
    form as a whole)."""

    kind: Kind
    target: str
    fields: dict[str, str] = field(default_factory=dict[str, str])
    errors: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    def add(self, key: str, message: str) -> None:
        """Record ``message`` against ``key`` (``GENERAL``: the form as a whole)."""
        self.errors.setdefault(key, []).append(message)

    @property
    def general(self) -> list[str]:
        """The errors of the form as a whole."""
        return self.errors.get(GENERAL, [])


def redirect(state: HttpState, request: Request, flash: Flash, page: str) -> RedirectResponse:
    """303 to ``page`` (a Studio path, maybe with a ``#fragment``) showing ``flash``."""
    path, hash_mark, fragment = page.partition("#")
    joiner = "&" if "?" in path else "?"
    target = f"{request.scope.get('root_path', '')}{path}{joiner}{FORM_PARAM}={flash.nonce}"
    response = RedirectResponse(target + hash_mark + fragment, status_code=303)
    response.set_cookie(
        FLASH_COOKIE,
        _encode(state, flash),
        max_age=FLASH_LIFETIME,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=cookie_path(request),
    )
    return response


def recall(state: HttpState, request: Request, kind: Kind, target: str) -> Flash | None:
    """The flash this page's address names, if the browser holds it (signed, unexpired,
    of this kind and target)."""
    nonce = request.query_params.get(FORM_PARAM)
    cookie = request.cookies.get(FLASH_COOKIE)
    if not nonce or not cookie:
        return None
    flash = _decode(state, cookie)
    if flash is None or (flash.nonce, flash.kind, flash.target) != (nonce, kind, target):
        return None
    return flash


def _encode(state: HttpState, flash: Flash) -> str:
    """The cookie's value: ``flash``, signed, without its largest inputs while it would pass
    ``COOKIE_BUDGET`` (each one dropped says so next to its field).

    Linear in what the form sent: only the smallest inputs that ``KEEP_BUDGET`` holds are
    candidates, and how many of them fit is found by halving (a few compressions of at most
    that), never by compressing everything again for each input dropped.
    """
    sizes = {name: len(text) for name, text in flash.fields.items() if text}
    typed = sorted(sizes, key=sizes.__getitem__)
    most = bisect.bisect_right(list(itertools.accumulate(sizes[n] for n in typed)), KEEP_BUDGET)
    value = _packed(state, _dropping(flash, typed[most:]))
    if len(value) <= COOKIE_BUDGET or most == 0:
        return value
    low, high = 0, most - 1  # how many of the smallest inputs fit: in low..high
    value = _packed(state, _dropping(flash, typed))  # with none, kept even if over the budget
    while low < high:
        middle = (low + high + 1) // 2
        attempt = _packed(state, _dropping(flash, typed[middle:]))
        if len(attempt) <= COOKIE_BUDGET:
            low, value = middle, attempt
        else:
            high = middle - 1
    return value


def _dropping(flash: Flash, names: list[str]) -> Flash:
    """``flash`` without the inputs ``names``, and at most ``MAX_MESSAGES`` errors a key."""
    errors = {key: _first_messages(messages) for key, messages in flash.errors.items()}
    kept = Flash(flash.kind, flash.target, dict(flash.fields), errors, flash.nonce)
    for name in names:
        kept.fields[name] = ""
        kept.add(
            name.removeprefix("p."),
            f"what you entered here ({len(flash.fields[name]):,} characters) was too large to "
            "keep across the page load: enter it again",
        )
    return kept


def _first_messages(messages: list[str]) -> list[str]:
    if len(messages) <= MAX_MESSAGES:
        return list(messages)
    return [*messages[:MAX_MESSAGES], f"and {len(messages) - MAX_MESSAGES:,} more"]


def _packed(state: HttpState, flash: Flash) -> str:
    data = {
        "k": flash.kind,
        "t": flash.target,
        "f": flash.fields,
        "e": flash.errors,
        "n": flash.nonce,
        "x": round(time.time()) + FLASH_LIFETIME,
    }
    packed = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)
    payload = base64.urlsafe_b64encode(packed).decode().rstrip("=")
    return f"{payload}.{_signature(state, payload)}"


def _decode(state: HttpState, cookie: str) -> Flash | None:
    payload, _, signature = cookie.partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(state, payload).encode()):
        return None
    try:
        packed = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        data = cast(dict[str, Any], json.loads(zlib.decompress(packed)))
    except (binascii.Error, zlib.error, ValueError):
        return None
    if data.get("x", 0) < time.time():
        return None
    return Flash(data["k"], data["t"], data["f"], data["e"], data["n"])


def _signature(state: HttpState, payload: str) -> str:
    return state.sign(f"fw-form:v1:{payload}")
