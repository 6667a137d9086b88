"""Search the messages of one chat (nested route with ?q=, compat routes with q in the path)."""

from pyramid.view import view_config

from chatsys.errors import ServiceUnavailable, ValidationFailed
from chatsys.representations import search_hit_json
from chatsys.search.interfaces import (
    SORT_NEWEST,
    SORTS,
    ChatScope,
    InvalidCursor,
    SearchRequest,
    SearchUnavailable,
)
from chatsys.search.query import MAX_QUERY_LENGTH, words
from chatsys.validation import query_choice, query_int

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR = 512


def search_text(request) -> str:
    raw = request.matchdict.get("q") if "q" in request.matchdict else request.GET.get("q")
    if raw is None:
        raise ValidationFailed.for_field("q", "is required")
    text = raw.strip()
    if not text:
        raise ValidationFailed.for_field("q", "must not be empty")
    if len(text) > MAX_QUERY_LENGTH:
        raise ValidationFailed.for_field("q", f"must be at most {MAX_QUERY_LENGTH} characters")
    if "\x00" in text:
        raise ValidationFailed.for_field("q", "must not contain a NUL character")
    return text


@view_config(route_name="messages.search", request_method="GET", renderer="json")
@view_config(route_name="compat.messages.search", request_method="GET", renderer="json")
@view_config(route_name="compat.chats.search", request_method="GET", renderer="json")
def search_messages(context, request):
    text = search_text(request)
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    sort = query_choice(request, "sort", SORTS, SORT_NEWEST)
    cursor = request.GET.get("cursor")
    if cursor is not None and not 1 <= len(cursor) <= MAX_CURSOR:
        raise ValidationFailed.for_field("cursor", f"must be 1 to {MAX_CURSOR} characters")
    chat = context.chat
    search = SearchRequest(
        chat=ChatScope(chat.application.token, chat.number, chat.id),
        text=text,
        words=words(text),
        limit=limit,
        cursor=cursor,
        sort=sort,
    )
    try:
        result = request.search.search(search)
    except InvalidCursor as exc:
        raise ValidationFailed.for_field("cursor", str(exc)) from None
    except SearchUnavailable:
        raise ServiceUnavailable("Search is unavailable; retry later.") from None
    next_url = None
    if result.next_cursor is not None:
        next_url = request.current_route_url(
            _query={"q": text, "limit": limit, "sort": sort, "cursor": result.next_cursor}
            if "q" not in request.matchdict
            else {"limit": limit, "sort": sort, "cursor": result.next_cursor}
        )
        request.response.headers["Link"] = f'<{next_url}>; rel="next"'
    return {
        "data": [search_hit_json(hit) for hit in result.hits],
        "pagination": {"limit": limit, "next_cursor": result.next_cursor, "next": next_url},
    }
