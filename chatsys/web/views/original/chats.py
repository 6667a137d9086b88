"""ChatsController of the original API: create, show, update (204), index (its messages)."""

from pyramid.httpexceptions import HTTPNoContent
from pyramid.view import view_config

from chatsys.domain import chats, messages
from chatsys.web.pagination import original_list
from chatsys.web.params import required_text
from chatsys.web.resources import chat_before_parameters
from chatsys.web.views.original import rails_time


@view_config(route_name="original.chats.collection", request_method="POST", renderer="json")
def create(context, request):
    name = required_text(request.original_params, "name")
    row = chats.create(request.dbsession, request.services.allocator, context, name).row
    request.response.status = 201
    # The original's three keys, then the rest of the chat.
    return {
        "name": row.name,
        "messages_count": row.messages_count,
        "chat_number": row.number,
        "created_at": rails_time(row.created_at),
        "updated_at": rails_time(row.updated_at),
    }


@view_config(route_name="original.chats.item", request_method="GET", renderer="json")
def show(context, request):
    row = chats.load(request.dbsession, context)
    return {
        "name": row.name,
        "updated_at": rails_time(row.updated_at),
        "created_at": rails_time(row.created_at),
        "messages_count": row.messages_count,
        "chat_number": row.number,
    }


@view_config(route_name="original.chats.update", request_method="PATCH")
def update(context, request):
    chats.rename(request.dbsession, context, required_text(request.original_params, "name"))
    return HTTPNoContent()


@view_config(route_name="original.chats.messages", request_method="GET", renderer="json")
def index(context, request):
    with chat_before_parameters(request, context):
        return original_list(
            request,
            lambda direction, cursor, limit: messages.page(request.dbsession, context, direction, cursor, limit),
            lambda row: {
                "number": row.number,
                "body": row.body,
                "created_at": rails_time(row.created_at),
                "updated_at": rails_time(row.updated_at),
            },
        )
