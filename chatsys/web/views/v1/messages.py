"""/v1 messages of a chat: create (numbered), list, read, edit (the version rises), delete."""

from operator import itemgetter

from pyramid.httpexceptions import HTTPNoContent
from pyramid.view import view_config

from chatsys.domain import messages
from chatsys.web.pagination import page
from chatsys.web.resources import chat_before_parameters
from chatsys.web.validation import idempotency_key, json_body


@view_config(route_name="v1.messages.collection", request_method="POST", renderer="json")
def create_message(context, request):
    with chat_before_parameters(request, context):
        fields = json_body(request, "MessageCreate")
        key = idempotency_key(request)
    created = messages.create(request.dbsession, request.services.allocator, context, fields["body"], key)
    if created.replayed:
        request.response.headers["Idempotent-Replayed"] = "true"
    request.response.status = 201
    return messages.representation(context.number, created.row)


@view_config(route_name="v1.messages.collection", request_method="GET", renderer="json")
def list_messages(context, request):
    with chat_before_parameters(request, context):
        return page(
            request,
            lambda direction, cursor, limit: messages.shown_page(request.dbsession, context, direction, cursor, limit),
            number=itemgetter("message_number"),
        )


@view_config(route_name="v1.messages.item", request_method="GET", renderer="json")
def get_message(context, request):
    row = messages.read(request.dbsession, context.chat, context.number)
    return messages.representation(context.chat.number, row)


@view_config(route_name="v1.messages.item", request_method="PATCH", renderer="json")
def edit_message(context, request):
    fields = json_body(request, "MessageUpdate")
    row = messages.edit(request.dbsession, context.chat, context.number, fields["body"])
    return messages.representation(context.chat.number, row)


@view_config(route_name="v1.messages.item", request_method="DELETE")
def delete_message(context, request):
    messages.delete(request.dbsession, context.chat, context.number)
    return HTTPNoContent()
