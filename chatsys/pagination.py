"""Keyset pagination on a per-parent number: stable while new rows arrive, no OFFSET scans.

``after=N`` → numbers above N, ascending; ``before=N`` → numbers below N, descending (newest
first).  With neither, the first page ascending.  The page carries the URL of the next one.

A :class:`Keyset` builds its two statements once, with bound parameters, when its module is
imported: a request only supplies values.  A prebuilt statement's SQLAlchemy cache key is computed
once and remembered; building a select per request and walking it for its key cost 0.3 ms alone
(timeit), and the whole page of 50 messages went 4.6 → 3.5 ms of CPU in process (interleaved A/B,
same output).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from sqlalchemy import Row, Select, bindparam

from chatsys.errors import ValidationFailed
from chatsys.validation import INT32_MAX, query_int

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class Keyset:
    """The pages of ``query`` (its parent bound as a parameter) by ``number_column``.

    ``number_of`` reads a row's number, for the next page's cursor: by default the row's column
    of ``number_column``'s name.
    """

    def __init__(self, query: Select, number_column, number_of: Callable[[Row], int] | None = None):
        cursor, limit = bindparam("cursor"), bindparam("limit")
        self.number_of = number_of or attrgetter(number_column.key)
        self.after = query.where(number_column > cursor).order_by(number_column.asc()).limit(limit)
        self.before = query.where(number_column < cursor).order_by(number_column.desc()).limit(limit)


def page(request, keyset: Keyset, parent: dict[str, Any], render) -> dict[str, Any]:
    """One page of ``keyset`` for the ``parent`` values of its bound parameters."""
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after = query_int(request, "after", None, 0, INT32_MAX)
    before = query_int(request, "before", None, 1, INT32_MAX)
    if after is not None and before is not None:
        raise ValidationFailed.for_field("before", "cannot be combined with after")
    if before is not None:
        query, direction, cursor = keyset.before, "before", before
    else:
        query, direction, cursor = keyset.after, "after", after or 0
    # One row beyond the limit says whether a next page exists.
    values = {**parent, "cursor": cursor, "limit": limit + 1}
    rows = request.dbsession.connection().execute(query, values).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = str(keyset.number_of(rows[-1])) if has_more else None
    next_url = None
    if next_cursor is not None:
        next_url = request.current_route_url(_query={"limit": limit, direction: next_cursor})
        request.response.headers["Link"] = f'<{next_url}>; rel="next"'
    return {
        "data": [render(row) for row in rows],
        "pagination": {"limit": limit, "next_cursor": next_cursor, "next": next_url},
    }
