"""Instance ids: what a caller may choose, checked before anything is stored.

An id is 1-100 characters of ``[A-Za-z0-9_.:-]``, and not ``.`` or ``..`` alone, so it is
safe in a URL path segment, a file name and a log line. Ids fw derives itself (children's
``parent:name:n``) follow the same alphabet. Instances stored before this rule stay readable.
"""

from __future__ import annotations

import os
import re
import threading

from framework.errors import InvalidInstanceIdError

MAX_ID_LENGTH = 100
ID_PATTERN = r"[A-Za-z0-9_.:-]{1,100}"
"""The id rule as a regular expression (``.`` and ``..`` alone excepted)."""
_ID = re.compile(ID_PATTERN)


def is_valid_instance_id(instance_id: object) -> bool:
    """Whether ``instance_id`` follows the id rule."""
    return (
        isinstance(instance_id, str)
        and _ID.fullmatch(instance_id) is not None
        and instance_id not in (".", "..")
    )


def check_instance_id(instance_id: str) -> str:
    """Return ``instance_id`` if it follows the id rule.

    Raises:
        InvalidInstanceIdError: it does not; the message says why.
    """
    if is_valid_instance_id(instance_id):
        return instance_id
    raise InvalidInstanceIdError(instance_id)


class _RandomIds:
    """Random ids as ``uuid.uuid4().hex`` makes them, from the operating system's random
    bytes read 256 ids at a time: one system call per 256 creates instead of one each (a
    call that lets go of the GIL, which the event loop then waits to take back from the
    store's threads). A forked child draws bytes of its own, never its parent's."""

    BATCH = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = b""
        self._at = 0

    def next(self) -> str:
        with self._lock:
            if self._at >= len(self._bytes):
                self._bytes, self._at = os.urandom(16 * self.BATCH), 0
            raw = bytearray(self._bytes[self._at : self._at + 16])
            self._at += 16
        raw[6] = (raw[6] & 0x0F) | 0x40  # the version: 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # the variant: RFC 4122
        return raw.hex()

    def forget(self) -> None:
        """Drop the bytes read so far (in a child after ``fork``)."""
        self._bytes, self._at = b"", 0
        self._lock = threading.Lock()


_random_ids = _RandomIds()
os.register_at_fork(after_in_child=_random_ids.forget)


def new_instance_id() -> str:
    """A random instance id: 32 hex digits of a version-4 UUID, as ``uuid.uuid4().hex``."""
    return _random_ids.next()
