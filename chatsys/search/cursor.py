"""Opaque search cursors: the sort values of the last hit of a page, URL-safe base64 JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from chatsys.search.interfaces import InvalidCursor


def encode(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, length: int) -> list[Any]:
    """Decode a cursor of ``length`` numeric sort values, or raise InvalidCursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeEncodeError, binascii.Error):
        raise InvalidCursor("the cursor is not one this service produced") from None
    if (
        not isinstance(values, list)
        or len(values) != length
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ):
        raise InvalidCursor("the cursor is not one this service produced")
    return values
