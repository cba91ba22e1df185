"""Instance ids: what a caller may choose, checked before anything is stored.

An id is 1-100 characters of ``[A-Za-z0-9_.:-]``, and not ``.`` or ``..`` alone, so it is
safe in a URL path segment, a file name and a log line. Ids fw derives itself (children's
``parent:name:n``) follow the same alphabet. Instances stored before this rule stay readable.
"""

from __future__ import annotations

import re

from framework.errors import InvalidInstanceIdError

MAX_ID_LENGTH = 100
ID_PATTERN = r"[A-Za-z0-9_.:-]{1,100}"
"""The id rule as a regular expression (``.`` and ``..`` alone excepted)."""
_ID = re.compile(ID_PATTERN)


def is_valid_instance_id(instance_id: str) -> bool:
    """Whether ``instance_id`` follows the id rule."""
    return _ID.fullmatch(instance_id) is not None and instance_id not in (".", "..")


def check_instance_id(instance_id: str) -> str:
    """Return ``instance_id`` if it follows the id rule.

    Raises:
        InvalidInstanceIdError: it does not; the message says why.
    """
    if is_valid_instance_id(instance_id):
        return instance_id
    raise InvalidInstanceIdError(instance_id)
