"""/v1 search of a chat's messages: ``GET …/messages/search?q=``, partial words matching."""

from pyramid.view import view_config

from chatsys.search.interfaces import SORT_NEWEST, SORTS
from chatsys.web.search import hit_representation, search_chat, search_text
from chatsys.web.validation import query_choice, query_int

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@view_config(route_name="v1.messages.search", request_method="GET", renderer="json")
def search_messages(context, request):
    text = search_text(request.GET.get("q"))
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    sort = query_choice(request, "sort", SORTS, SORT_NEWEST)
    result = search_chat(request, context, text, limit, sort, request.GET.get("cursor"))
    next_url = None
    if result.next_cursor is not None:
        query = {"q": text, "limit": limit, "sort": sort, "cursor": result.next_cursor}
        next_url = request.current_route_path(_query=query)
        request.response.headers["Link"] = f'<{next_url}>; rel="next"'
    return {
        "data": [hit_representation(hit) for hit in result.hits],
        "pagination": {"limit": limit, "next_cursor": result.next_cursor, "next": next_url},
    }
