"""MessagesController of the original API: create, show, update (204), search."""

from pyramid.httpexceptions import HTTPNoContent
from pyramid.view import view_config

from chatsys.domain import messages
from chatsys.search.interfaces import SORT_NEWEST
from chatsys.web.params import required_text
from chatsys.web.resources import chat_before_parameters
from chatsys.web.search import search_chat, search_text
from chatsys.web.validation import query_int
from chatsys.web.views.original import rails_time

# Hits a search returns (the newest first); ?limit= asks for fewer.
SEARCH_LIMIT = 100


def message_json(chat_number: int, row) -> dict:
    return {
        "chat_number": chat_number,
        "message_number": row.number,
        "body": row.body,
        "created_at": rails_time(row.created_at),
        "updated_at": rails_time(row.updated_at),
    }


@view_config(route_name="original.messages.collection", request_method="POST", renderer="json")
def create(context, request):
    with chat_before_parameters(request, context):
        body = required_text(request.original_params, "body")
    row = messages.create(request.dbsession, request.services.allocator, context, body).row
    request.response.status = 201
    return message_json(context.number, row)


@view_config(route_name="original.messages.item", request_method="GET", renderer="json")
def show(context, request):
    return message_json(context.chat.number, messages.read(request.dbsession, context.chat, context.number))


@view_config(route_name="original.messages.update", request_method="PATCH")
def update(context, request):
    body = required_text(request.original_params, "body")
    messages.edit(request.dbsession, context.chat, context.number, body)
    return HTTPNoContent()


@view_config(route_name="original.messages.search", request_method="GET", renderer="json")
@view_config(route_name="original.chats.search", request_method="GET", renderer="json")
def search(context, request):
    text = search_text(request.matchdict["q"])
    limit = query_int(request, "limit", SEARCH_LIMIT, 1, SEARCH_LIMIT)
    result = search_chat(request, context, text, limit, SORT_NEWEST)
    return [{"number": hit.message["message_number"], "body": hit.message["body"]} for hit in result.hits]
