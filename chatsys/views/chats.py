"""Chats of an application: create (numbered), list, read, rename; plus the compat aliases."""

from pyramid.httpexceptions import HTTPNoContent
from pyramid.view import view_config
from sqlalchemy import bindparam, select

from chatsys.creation import create_numbered
from chatsys.errors import NotFound
from chatsys.models import Chat, utcnow
from chatsys.models.idempotency import SCOPE_CHAT
from chatsys.numbering import chat_sequence
from chatsys.outbox import events
from chatsys.pagination import Keyset, page
from chatsys.representations import chat_json
from chatsys.resources import validated_body

CHATS = Chat.__table__
# One chat by its number, or by its id: built once with bound parameters.
BY_NUMBER = select(CHATS).where(
    CHATS.c.application_id == bindparam("application_id"), CHATS.c.number == bindparam("number")
)
BY_ID = select(CHATS).where(CHATS.c.id == bindparam("id"))
PAGES = Keyset(select(CHATS).where(CHATS.c.application_id == bindparam("application_id")), CHATS.c.number)


def load_chat(request, application_id: int, number: int):
    chat = request.dbsession.execute(BY_NUMBER, {"application_id": application_id, "number": number}).one_or_none()
    if chat is None:
        raise NotFound("The application has no chat with this number.")
    return chat


@view_config(route_name="chats.collection", request_method="POST", renderer="json")
@view_config(route_name="compat.chats.collection", request_method="POST", renderer="json")
def create_chat(context, request):
    fields = validated_body(request, "ChatCreate", required=False)
    application = context.application
    now = utcnow()
    chat = create_numbered(
        request,
        scope=SCOPE_CHAT,
        model=Chat,
        sequence=chat_sequence(application.id),
        fields=fields,
        values=lambda number: {
            "application_id": application.id,
            "number": number,
            "name": fields.get("name"),
            "messages_count": 0,
            "counted": False,
            "created_at": now,
            "updated_at": now,
        },
        event=lambda row: events.chat_created(application, row),
        existing=lambda number: load_chat(request, application.id, number),
    )
    request.response.status = 201
    return chat_json(chat)


@view_config(route_name="chats.collection", request_method="GET", renderer="json")
def list_chats(context, request):
    return page(request, PAGES, {"application_id": context.application.id}, chat_json)


@view_config(route_name="chats.item", request_method="GET", renderer="json")
@view_config(route_name="compat.chats.item", request_method="GET", renderer="json")
def get_chat(context, request):
    return chat_json(request.dbsession.execute(BY_ID, {"id": context.chat.id}).one())


@view_config(route_name="chats.item", request_method="PATCH", renderer="json")
def update_chat(context, request):
    fields = validated_body(request, "ChatUpdate")
    chat = request.dbsession.get(Chat, context.chat.id, with_for_update=True)
    chat.name = fields["name"]
    chat.updated_at = utcnow()
    request.dbsession.flush()
    return chat_json(chat)


@view_config(route_name="compat.chats.update", request_method="PATCH")
def compat_update_chat(context, request):
    """The older API's PATCH /chats/{number}: same update, answered 204 with no body."""
    update_chat(context, request)
    return HTTPNoContent()
