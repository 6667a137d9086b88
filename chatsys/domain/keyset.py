"""Keyset pages on a per-parent number: stable while new rows arrive, and no OFFSET scans.

``after=N`` gives numbers above N, ascending; ``before=N`` numbers below N, descending (newest
first).  The statements are built once, with bound parameters; a request supplies values only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, Select, bindparam
from sqlalchemy.orm import Session

AFTER = "after"
BEFORE = "before"


class Keyset:
    """The pages of ``query`` (its parent a bound parameter) ordered by ``number_column``."""

    def __init__(self, query: Select, number_column):
        cursor, limit = bindparam("cursor"), bindparam("limit")
        self.statements = {
            AFTER: query.where(number_column > cursor).order_by(number_column.asc()).limit(limit),
            BEFORE: query.where(number_column < cursor).order_by(number_column.desc()).limit(limit),
        }

    def fetch(self, session: Session, parent: Mapping[str, Any], direction: str, cursor: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows of the parent's, ``direction`` of the number ``cursor``."""
        return session.execute(self.statements[direction], {**parent, "cursor": cursor, "limit": limit}).all()
