"""Route factories: resolve the application / chat / message a request names, or raise 404.

The nested routes name everything in the path.  The compatibility routes of the older API carry
the application token (and chat number) in the JSON body instead; their factories validate the
body against the compat schema, resolve the same contexts, and leave the remaining fields in
``request.validated`` for the shared view.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatsys.errors import NotFound
from chatsys.lookups import ApplicationRef, ChatRef
from chatsys.validation import json_body, parse_path_number


@dataclass(frozen=True)
class ApplicationContext:
    application: ApplicationRef


@dataclass(frozen=True)
class ChatContext:
    chat: ChatRef

    @property
    def application(self) -> ApplicationRef:
        return self.chat.application


@dataclass(frozen=True)
class MessageContext:
    chat: ChatRef
    number: int


def _lookups(request):
    return request.registry["lookups"]


def find_application(request, token: str | None) -> ApplicationRef:
    ref = _lookups(request).application(request.dbsession, token or "")
    if ref is None:
        raise NotFound("No application has this token.")
    return ref


def find_chat(request, token: str | None, chat_number) -> ChatRef:
    application = find_application(request, token)
    number = chat_number if isinstance(chat_number, int) else parse_path_number(chat_number)
    ref = None if number is None else _lookups(request).chat(request.dbsession, application, number)
    if ref is None:
        raise NotFound("The application has no chat with this number.")
    return ref


def message_number(raw: str | None) -> int:
    number = parse_path_number(raw)
    if number is None:
        raise NotFound("The chat has no message with this number.")
    return number


# -- nested routes: everything in the path --------------------------------------------------------


def application_factory(request) -> ApplicationContext:
    return ApplicationContext(find_application(request, request.matchdict.get("token")))


def chat_factory(request) -> ChatContext:
    md = request.matchdict
    return ChatContext(find_chat(request, md.get("token"), md.get("chat_number")))


def message_factory(request) -> MessageContext:
    md = request.matchdict
    # Parse the message number first: a non-numeric one is a 404 whatever the chat.
    number = message_number(md.get("message_number"))
    return MessageContext(find_chat(request, md.get("token"), md.get("chat_number")), number)


# -- compatibility routes: locators in the body ---------------------------------------------------


def _split(body: dict, *locators: str) -> dict:
    return {k: v for k, v in body.items() if k not in locators}


class _NoContext:
    """Context for a compat route called with the wrong method: no view matches it → 405."""


def _only(method: str):
    # Route factories run before view lookup; a compat factory must not parse the body of a
    # request whose method no view accepts, or a wrong method would answer 4xx about the body.
    def decorate(factory):
        def wrapper(request):
            return factory(request) if request.method == method else _NoContext()

        wrapper.__doc__ = factory.__doc__
        return wrapper

    return decorate


@_only("POST")
def compat_chats_factory(request) -> ApplicationContext:
    """POST /chats {"name", "app_token"}."""
    body = json_body(request, "CompatChatCreate")
    request.validated = _split(body, "app_token")
    return ApplicationContext(find_application(request, body["app_token"]))


@_only("PATCH")
def compat_chat_factory(request) -> ChatContext:
    """PATCH /chats/{chat_number} {"name", "app_token"}."""
    body = json_body(request, "CompatChatUpdate")
    request.validated = _split(body, "app_token")
    return ChatContext(find_chat(request, body["app_token"], request.matchdict.get("chat_number")))


@_only("POST")
def compat_messages_factory(request) -> ChatContext:
    """POST /messages {"body", "chat_number", "app_token"}."""
    body = json_body(request, "CompatMessageCreate")
    request.validated = _split(body, "app_token", "chat_number")
    return ChatContext(find_chat(request, body["app_token"], body["chat_number"]))


@_only("PATCH")
def compat_message_factory(request) -> MessageContext:
    """PATCH /messages/{message_number} {"body", "chat_number", "app_token"}."""
    number = message_number(request.matchdict.get("message_number"))
    body = json_body(request, "CompatMessageUpdate")
    request.validated = _split(body, "app_token", "chat_number")
    return MessageContext(find_chat(request, body["app_token"], body["chat_number"]), number)


def validated_body(request, schema_name: str, required: bool = True) -> dict:
    """The request's validated fields: from a compat factory, or parsed here for nested routes."""
    validated = getattr(request, "validated", None)
    if validated is None:
        validated = request.validated = json_body(request, schema_name, required=required)
    return validated
