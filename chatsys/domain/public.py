"""What a client may see of an event: the /v1 representation of its aggregate, without the
internal ids the consumers work by.  The stream gateway sends exactly this."""

from __future__ import annotations

from typing import Any

from chatsys.domain import applications, chats, messages

KEYS = {"application": applications.KEYS, "chat": chats.KEYS, "message": messages.KEYS}


def public_data(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The representation an event carries; raises KeyError for an aggregate it does not know."""
    keys = KEYS[event_type.split(".", 1)[0]]
    return {key: data[key] for key in keys if key in data}
