"""Route factories: the application, chat or message a request names, or a 404.

/v1 names everything in the path.  The original API reads its keys from Rails-style ``params``
(``request.original_params``: path, body or query string, ``chatsys.web.params``).  Both
resolve through the same domain lookups.

Reads and creates of messages are not looked up here: their context holds the chat's keys
(:class:`~chatsys.domain.chats.ChatKeys`), which the read's own statement resolves, or the
create's statement that locks the chat for its number; one query where a lookup and then the
read or the lock were two.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chatsys.domain import applications, chats
from chatsys.domain.applications import ApplicationRef
from chatsys.domain.chats import ChatKeys, ChatRef
from chatsys.domain.errors import NotFound
from chatsys.web.errors import ChatsysError
from chatsys.web.params import number
from chatsys.web.validation import parse_path_number

READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class MessageContext:
    chat: ChatRef | ChatKeys  # the keys for a read, the chat for a write
    number: int


def find_application(request, token: str | None) -> ApplicationRef:
    if not isinstance(token, str):
        raise NotFound("application")
    return applications.find(request.dbsession, token)


def find_chat(request, token: str | None, chat_number: int | None) -> ChatRef:
    if not isinstance(token, str):
        raise NotFound("application")
    if chat_number is None:
        find_application(request, token)  # which of the two is missing decides the answer
        raise NotFound("chat")
    return chats.find(request.dbsession, token, chat_number)


def chat_keys(request, token: str | None, chat_number: int | None) -> ChatKeys:
    """The chat's keys, for a read that resolves them in its own statement; a token or number that
    cannot name anything is answered here, as :func:`find_chat` would."""
    if not isinstance(token, str) or chat_number is None:
        find_chat(request, token, chat_number)  # raises
    return ChatKeys(token, chat_number)


@contextmanager
def chat_before_parameters(request, chat: ChatKeys) -> Iterator[None]:
    """A read or a create checks its parameters or body before its statement resolves the chat: a
    missing or deleted chat still answers its 404 before a bad request's 4xx, as where the factory
    looks it up."""
    try:
        yield
    except ChatsysError as exc:
        if exc.status < 500:  # a client's error, not a dependency's (503)
            chat.resolve(request.dbsession)  # raises if the chat is not there
        raise


def message_number(value: int | None) -> int:
    if value is None:
        raise NotFound("message")
    return value


# -- /v1: everything in the path -------------------------------------------------------------------


def application(request) -> ApplicationRef:
    return find_application(request, request.matchdict.get("token"))


def chat(request) -> ChatRef:
    md = request.matchdict
    return find_chat(request, md.get("token"), parse_path_number(md.get("chat_number")))


def messages(request) -> ChatKeys:
    """A chat's messages, for a list or a create: the chat's keys."""
    md = request.matchdict
    return chat_keys(request, md.get("token"), parse_path_number(md.get("chat_number")))


def message(request) -> MessageContext:
    md = request.matchdict
    # The message number first: one that is not a number is a 404 whatever the chat.
    number = message_number(parse_path_number(md.get("message_number")))
    chat_number = parse_path_number(md.get("chat_number"))
    if request.method in READS:
        return MessageContext(chat_keys(request, md.get("token"), chat_number), number)
    return MessageContext(find_chat(request, md.get("token"), chat_number), number)


# -- the original API: keys in params ----------------------------------------------------------------


def original_application(request) -> ApplicationRef:
    return find_application(request, request.original_params.get("app_token"))


def original_chat(request) -> ChatRef:
    """ChatsController's ``set_chat``: the chat is ``params[:number]``."""
    params = request.original_params
    return find_chat(request, params.get("app_token"), number(params, "number"))


def original_message_chat(request) -> ChatRef:
    """MessagesController's ``set_chat``: the chat is ``params[:chat_number]``."""
    params = request.original_params
    return find_chat(request, params.get("app_token"), number(params, "chat_number"))


def original_new_message(request) -> ChatKeys:
    """The chat of ``POST /messages`` (``params[:chat_number]``), by its keys: the create finds and
    locks it in one statement."""
    params = request.original_params
    return chat_keys(request, params.get("app_token"), number(params, "chat_number"))


def original_chat_messages(request) -> ChatKeys:
    """The chat of ``GET /chats/:app_token/:number/messages``, by its keys (a read)."""
    params = request.original_params
    return chat_keys(request, params.get("app_token"), number(params, "number"))


def original_message(request) -> MessageContext:
    if request.method in READS:
        params = request.original_params
        chat = chat_keys(request, params.get("app_token"), number(params, "chat_number"))
        return MessageContext(chat, message_number(number(params, "number")))
    chat = original_message_chat(request)
    return MessageContext(chat, message_number(number(request.original_params, "number")))
