"""Messages of a chat: create (numbered), list, read, edit (raises the version); compat aliases.

Core statements on the ``messages`` table, not ORM objects: these are the service's hottest
paths, and rows are all a representation needs.
"""

from types import SimpleNamespace

from pyramid.httpexceptions import HTTPNoContent
from pyramid.view import view_config
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Row

from chatsys.creation import create_numbered
from chatsys.errors import NotFound
from chatsys.models import Message, utcnow
from chatsys.models.idempotency import SCOPE_MESSAGE
from chatsys.models.message import SHOWN, shown_number, unpack_shown
from chatsys.numbering import message_sequence
from chatsys.outbox import events, writer
from chatsys.pagination import Keyset, page
from chatsys.representations import message_json, shown_message_json
from chatsys.resources import validated_body

MESSAGES = Message.__table__
# One message by its number, built once with bound parameters: a request only supplies values.
BY_NUMBER = (MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.number == bindparam("number"))
READ_ONE = select(SHOWN).where(*BY_NUMBER)
LOCK_ONE = select(MESSAGES).where(*BY_NUMBER).with_for_update()
PAGES = Keyset(
    select(SHOWN).where(MESSAGES.c.chat_id == bindparam("chat_id")),
    MESSAGES.c.number,
    number_of=lambda row: shown_number(row[0]),
)


def load_message(request, chat_id: int, number: int, for_update: bool = False) -> Row:
    """A row holding the message's packed ``SHOWN`` column, or (``for_update``) its whole row, locked."""
    query = LOCK_ONE if for_update else READ_ONE
    message = request.dbsession.connection().execute(query, {"chat_id": chat_id, "number": number}).one_or_none()
    if message is None:
        raise NotFound("The chat has no message with this number.")
    return message


def shown_message(request, chat_id: int, number: int) -> SimpleNamespace:
    """The message's shown fields by name (a replayed create renders them as a new one)."""
    number, body, version, created_at, updated_at = unpack_shown(load_message(request, chat_id, number)[0])
    return SimpleNamespace(number=number, body=body, version=version, created_at=created_at, updated_at=updated_at)


@view_config(route_name="messages.collection", request_method="POST", renderer="json")
@view_config(route_name="compat.messages.collection", request_method="POST", renderer="json")
def create_message(context, request):
    fields = validated_body(request, "MessageCreate")
    chat = context.chat
    now = utcnow()
    message = create_numbered(
        request,
        scope=SCOPE_MESSAGE,
        model=Message,
        sequence=message_sequence(chat.id),
        fields=fields,
        values=lambda number: {
            "chat_id": chat.id,
            "number": number,
            "body": fields["body"],
            "version": 1,
            "counted": False,
            "created_at": now,
            "updated_at": now,
        },
        event=lambda row: events.message_changed(events.MESSAGE_CREATED, chat, row),
        existing=lambda number: shown_message(request, chat.id, number),
    )
    request.response.status = 201
    return message_json(message, chat.number)


@view_config(route_name="messages.collection", request_method="GET", renderer="json")
@view_config(route_name="compat.chats.messages", request_method="GET", renderer="json")
def list_messages(context, request):
    number = context.chat.number
    return page(request, PAGES, {"chat_id": context.chat.id}, lambda row: shown_message_json(row, number))


@view_config(route_name="messages.item", request_method="GET", renderer="json")
@view_config(route_name="compat.messages.item", request_method="GET", renderer="json")
def get_message(context, request):
    return shown_message_json(load_message(request, context.chat.id, context.number), context.chat.number)


@view_config(route_name="messages.item", request_method="PATCH", renderer="json")
def update_message(context, request):
    fields = validated_body(request, "MessageUpdate")
    # FOR UPDATE: concurrent edits of one message serialise here, so each gets its own version
    # and each outbox event carries the body that goes with that version.
    current = load_message(request, context.chat.id, context.number, for_update=True)
    message = SimpleNamespace(
        **{**current._asdict(), "body": fields["body"], "version": current.version + 1, "updated_at": utcnow()}
    )
    request.dbsession.execute(
        update(MESSAGES)
        .where(MESSAGES.c.chat_id == message.chat_id, MESSAGES.c.number == message.number)
        .values(body=message.body, version=message.version, updated_at=message.updated_at)
    )
    writer.record(request.dbsession, events.message_changed(events.MESSAGE_UPDATED, context.chat, message))
    return message_json(message, context.chat.number)


@view_config(route_name="compat.messages.update", request_method="PATCH")
def compat_update_message(context, request):
    """The older API's PATCH /messages/{number}: same edit, answered 204 with no body."""
    update_message(context, request)
    return HTTPNoContent()
