"""The JSON representations clients see.  Field names follow the seed API; no database id, ever."""

from __future__ import annotations

from typing import Any

from chatsys.models import Application, Chat, Message
from chatsys.outbox.events import isoformat


def application_json(app: Application) -> dict[str, Any]:
    return {
        "app_token": app.token,
        "name": app.name,
        "chats_count": app.chats_count,
        "created_at": isoformat(app.created_at),
        "updated_at": isoformat(app.updated_at),
    }


def chat_json(chat: Chat) -> dict[str, Any]:
    return {
        "chat_number": chat.number,
        "name": chat.name,
        "messages_count": chat.messages_count,
        "created_at": isoformat(chat.created_at),
        "updated_at": isoformat(chat.updated_at),
    }


def message_json(message: Message, chat_number: int) -> dict[str, Any]:
    return {
        "chat_number": chat_number,
        "message_number": message.number,
        "body": message.body,
        "version": message.version,
        "created_at": isoformat(message.created_at),
        "updated_at": isoformat(message.updated_at),
    }


def search_hit_json(hit) -> dict[str, Any]:
    return {
        "chat_number": hit.chat_number,
        "message_number": hit.message_number,
        "body": hit.body,
        "version": hit.version,
        "created_at": isoformat(hit.created_at),
        "updated_at": isoformat(hit.updated_at),
        "highlight": hit.highlight,
    }
