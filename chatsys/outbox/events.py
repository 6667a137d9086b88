"""Domain event types and their payloads.

An event is a JSON envelope ``{"event_id", "type", "occurred_at", "data"}``.  ``data`` holds the
full current state of the aggregate (for messages: body and version), so a consumer never needs to
read MySQL to apply it and a late or repeated event can be judged by its version.

Events travel only inside chatsys (MySQL → RabbitMQ → workers), so ``data`` carries the internal
ids the consumers update by, next to the public keys.  Nothing here is ever sent to a client.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatsys.lookups import ApplicationRef, ChatRef
    from chatsys.models import Chat, Message

CHAT_CREATED = "chat.created"
MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
EVENT_TYPES = (CHAT_CREATED, MESSAGE_CREATED, MESSAGE_UPDATED)

CONTENT_TYPE = "application/json"


def isoformat(moment: datetime) -> str:
    """UTC timestamp as ISO 8601 with a Z, microsecond precision (the API's format too)."""
    return moment.isoformat(timespec="microseconds") + "Z"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.removesuffix("Z"))


def envelope(event_type: str, data: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": isoformat(occurred_at),
        "data": data,
    }


def chat_created(application: ApplicationRef, chat: Chat) -> dict[str, Any]:
    return envelope(
        CHAT_CREATED,
        {
            "application_id": application.id,
            "chat_id": chat.id,
            "app_token": application.token,
            "chat_number": chat.number,
            "name": chat.name,
            "created_at": isoformat(chat.created_at),
        },
        chat.created_at,
    )


def message_changed(event_type: str, chat: ChatRef, message: Message) -> dict[str, Any]:
    return envelope(
        event_type,
        {
            "application_id": chat.application.id,
            "chat_id": chat.id,
            "message_id": message.id,
            "app_token": chat.application.token,
            "chat_number": chat.number,
            "message_number": message.number,
            "body": message.body,
            "version": message.version,
            "created_at": isoformat(message.created_at),
            "updated_at": isoformat(message.updated_at),
        },
        message.updated_at,
    )


def aggregate_key(event: dict[str, Any]) -> str:
    data = event["data"]
    key = f"{data['app_token']}:{data['chat_number']}"
    if "message_number" in data:
        key += f":{data['message_number']}"
    return key
