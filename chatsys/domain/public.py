"""What a client may see of an event: the /v1 representation of its aggregate, without the
internal ids the consumers work by.  The stream gateway sends exactly this."""

from __future__ import annotations

from typing import Any

from chatsys.domain import applications, chats, messages

MODULES = {"application": applications, "chat": chats, "message": messages}


def public_data(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The representation an event carries (of a ``*.deleted`` event: what is left, the keys and
    when); raises KeyError for an aggregate it does not know."""
    aggregate, _, action = event_type.partition(".")
    module = MODULES[aggregate]
    keys = module.TOMBSTONE_KEYS if action == "deleted" else module.KEYS
    return {key: data[key] for key in keys}
