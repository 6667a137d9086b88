"""Opaque search cursors, the same for every backend.

A cursor carries the sort values of the last hit of a page, bound to the search it came from
(chat, words and sort) by a fingerprint, so that it cannot be replayed on another search by
mistake.  URL-safe base64 of a small JSON object; validated on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from chatsys.search.interfaces import InvalidCursor, SearchRequest

MAX_CURSOR_LENGTH = 512
MAX_NUMBER = 2**31 - 1


def encode(request: SearchRequest, values: Sequence[Any]) -> str:
    raw = json.dumps({"f": _fingerprint(request), "a": list(values)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(request: SearchRequest, length: int) -> list[Any]:
    """The sort values of ``request.cursor``: ``length`` numbers, the last a message number.

    Raises :class:`InvalidCursor` unless it was made for this same search.
    """
    cursor = request.cursor or ""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor is too long")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise InvalidCursor("cursor is not valid") from exc
    if not isinstance(data, dict) or data.get("f") != _fingerprint(request):
        raise InvalidCursor("cursor does not belong to this search")
    values = data.get("a")
    if not isinstance(values, list) or len(values) != length:
        raise InvalidCursor("cursor is not valid")
    *scores, number = values
    if not _is_number(number) or not all(_is_score(score) for score in scores):
        raise InvalidCursor("cursor is not valid")
    return values


def _fingerprint(request: SearchRequest) -> str:
    identity = json.dumps([request.chat.key, request.sort, list(request.words)], ensure_ascii=False)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _is_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_NUMBER


def _is_score(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
