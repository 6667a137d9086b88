"""Pages of a per-parent numbered list (chats of an application, messages of a chat).

/v1 answers an envelope, ``{"data": [...], "pagination": {"limit", "next_cursor", "next"}}``:
``?after=N`` gives numbers above N, oldest first; ``?before=N`` numbers below N, newest first;
with neither, ``?order=oldest`` (the default) starts at the first item and ``?order=newest`` at
the last.  The next page's link repeats the direction with the last number shown.

The original API answers a bare array, as Rails did with every row of the list; here it holds the
newest ``chatsys.original_list_limit`` items (1,000 unless configured), oldest first as before,
and when older ones exist a ``Link: <…?before=N>; rel="next"`` header says where they are.
``?limit=`` asks for fewer.  Links are relative (path and query): nothing of the request's Host
header is written back.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from chatsys.domain.keyset import AFTER, BEFORE
from chatsys.web.errors import ValidationFailed
from chatsys.web.validation import INT32_MAX, query_choice, query_int

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
ORDERS = ("oldest", "newest")
# Numbers are at most INT32_MAX: "before" this one is every item.
PAST_THE_END = INT32_MAX + 1

Fetch = Callable[[str, int, int], list[Any]]  # (direction, cursor, limit) -> rows with .number
NUMBER = attrgetter("number")


def _link(request, query: dict[str, Any]) -> str:
    url = request.current_route_path(_query=query)
    request.response.headers["Link"] = f'<{url}>; rel="next"'
    return url


def page(
    request, fetch: Fetch, render: Callable[[Any], dict] | None = None, number: Callable[[Any], int] = NUMBER
) -> dict[str, Any]:
    """A /v1 page of ``fetch``'s rows, rendered (or as they are, without ``render``); ``number``
    reads an item's number, the cursor (``row.number`` unless said otherwise)."""
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after = query_int(request, "after", None, 0, INT32_MAX)
    before = query_int(request, "before", None, 1, PAST_THE_END)
    order = query_choice(request, "order", ORDERS, None)
    if after is not None and before is not None:
        raise ValidationFailed.for_field("before", "cannot be combined with after")
    if order is not None and (after is not None or before is not None):
        field = "after" if after is not None else "before"
        raise ValidationFailed.for_field("order", f"cannot be combined with {field}; the cursor sets the order")
    if before is not None or order == "newest":
        direction, cursor = BEFORE, PAST_THE_END if before is None else before
    else:
        direction, cursor = AFTER, after or 0
    # One row beyond the limit says whether a next page exists.
    rows = fetch(direction, cursor, limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = str(number(rows[-1])) if has_more else None
    next_url = None if next_cursor is None else _link(request, {"limit": limit, direction: next_cursor})
    return {
        "data": rows if render is None else [render(row) for row in rows],
        "pagination": {"limit": limit, "next_cursor": next_cursor, "next": next_url},
    }


def original_list(request, fetch: Fetch, render: Callable[[Any], dict]) -> list[dict]:
    """The original API's bare array: the newest items, oldest first, older ones behind a Link."""
    cap = request.registry.settings["chatsys.original_list_limit"]
    limit = query_int(request, "limit", cap, 1, cap)
    before = query_int(request, "before", PAST_THE_END, 1, PAST_THE_END)
    rows = fetch(BEFORE, before, limit + 1)
    if len(rows) > limit:
        rows = rows[:limit]
        _link(request, {"limit": limit, "before": rows[-1].number})
    return [render(row) for row in reversed(rows)]
