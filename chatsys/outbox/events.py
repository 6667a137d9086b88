"""The outbox's events: their types and their envelope.

An event is a JSON envelope ``{"event_id", "type", "occurred_at", "data"}``.  ``data`` holds the
full current state of the aggregate, as its domain module builds it (``chatsys.domain``): the
representation clients see, plus the internal ids the consumers update by.  A consumer never
needs to read MySQL to apply an event, and a late or repeated event can be judged by its
version.  The ids never reach a client: the stream gateway sends the representation only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from chatsys.domain.fields import isoformat

APPLICATION_CREATED = "application.created"
APPLICATION_UPDATED = "application.updated"
APPLICATION_DELETED = "application.deleted"
CHAT_CREATED = "chat.created"
CHAT_UPDATED = "chat.updated"
CHAT_DELETED = "chat.deleted"
MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
MESSAGE_DELETED = "message.deleted"

CONTENT_TYPE = "application/json"

# The public keys an event's aggregate is known by, from the outside in.
KEY_FIELDS = ("app_token", "chat_number", "message_number")


def envelope(event_type: str, data: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": isoformat(occurred_at),
        "data": data,
    }


def aggregate_key(event: dict[str, Any]) -> str:
    """``token``, ``token:chat`` or ``token:chat:message``: which aggregate the event is about."""
    data = event["data"]
    return ":".join(str(data[key]) for key in KEY_FIELDS if key in data)
