"""Keyset pagination on a per-parent number: stable while new rows arrive, no OFFSET scans.

``after=N`` → numbers above N, ascending; ``before=N`` → numbers below N, descending (newest
first).  With neither, the first page ascending.  The page carries the URL of the next one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from chatsys.errors import ValidationFailed
from chatsys.validation import INT32_MAX, query_int

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def page(request, query: Select, number_column, render) -> dict[str, Any]:
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after = query_int(request, "after", None, 0, INT32_MAX)
    before = query_int(request, "before", None, 1, INT32_MAX)
    if after is not None and before is not None:
        raise ValidationFailed.for_field("before", "cannot be combined with after")
    if before is not None:
        query = query.where(number_column < before).order_by(number_column.desc())
        direction = "before"
    else:
        query = query.where(number_column > (after or 0)).order_by(number_column.asc())
        direction = "after"
    rows = request.dbsession.connection().execute(query.limit(limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = str(rows[-1].number) if has_more else None
    next_url = None
    if next_cursor is not None:
        next_url = request.current_route_url(_query={"limit": limit, direction: next_cursor})
        request.response.headers["Link"] = f'<{next_url}>; rel="next"'
    return {
        "data": [render(row) for row in rows],
        "pagination": {"limit": limit, "next_cursor": next_cursor, "next": next_url},
    }
