"""/v1 chats of an application: create (numbered), list, read, rename, delete."""

from pyramid.httpexceptions import HTTPNoContent
from pyramid.view import view_config

from chatsys.domain import chats
from chatsys.web.pagination import page
from chatsys.web.validation import idempotency_key, json_body


@view_config(route_name="v1.chats.collection", request_method="POST", renderer="json")
def create_chat(context, request):
    fields = json_body(request, "ChatCreate", required=False)
    created = chats.create(
        request.dbsession, request.services.allocator, context, fields.get("name"), idempotency_key(request)
    )
    if created.replayed:
        request.response.headers["Idempotent-Replayed"] = "true"
    request.response.status = 201
    return chats.representation(created.row)


@view_config(route_name="v1.chats.collection", request_method="GET", renderer="json")
def list_chats(context, request):
    return page(
        request,
        lambda direction, cursor, limit: chats.page(request.dbsession, context, direction, cursor, limit),
        chats.representation,
    )


@view_config(route_name="v1.chats.item", request_method="GET", renderer="json")
def get_chat(context, request):
    return chats.representation(chats.load(request.dbsession, context))


@view_config(route_name="v1.chats.item", request_method="PATCH", renderer="json")
def rename_chat(context, request):
    fields = json_body(request, "ChatUpdate")
    return chats.representation(chats.rename(request.dbsession, context, fields["name"]))


@view_config(route_name="v1.chats.item", request_method="DELETE")
def delete_chat(context, request):
    """204: the chat and its messages are gone from every read now; their content and search
    documents are purged in the background."""
    chats.delete(request.dbsession, context)
    return HTTPNoContent()
