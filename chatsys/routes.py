"""Every route of the service, and nothing else.  Names are ``feature.action``."""

from chatsys import resources as r

APP = "/applications/{token}"
CHAT = APP + "/chats/{chat_number}"


def includeme(config) -> None:
    config.add_route("health", "/healthz")
    config.add_route("ready", "/readyz")
    config.add_route("metrics", "/metrics")

    config.add_route("applications.collection", "/applications")
    config.add_route("applications.item", APP, factory=r.application_factory)
    config.add_route("chats.collection", APP + "/chats", factory=r.application_factory)
    config.add_route("chats.item", CHAT, factory=r.chat_factory)
    config.add_route("messages.collection", CHAT + "/messages", factory=r.chat_factory)
    # Before messages.item, so that "search" is not taken for a message number.
    config.add_route("messages.search", CHAT + "/messages/search", factory=r.chat_factory)
    config.add_route("messages.item", CHAT + "/messages/{message_number}", factory=r.message_factory)

    # Compatibility routes of the older API: aliases of the views above.
    config.add_route("compat.chats.collection", "/chats", factory=r.compat_chats_factory)
    config.add_route("compat.chats.update", "/chats/{chat_number}", factory=r.compat_chat_factory)
    config.add_route("compat.chats.item", "/chats/{token}/{chat_number}", factory=r.chat_factory)
    config.add_route("compat.chats.messages", "/chats/{token}/{chat_number}/messages", factory=r.chat_factory)
    config.add_route("compat.chats.search", "/chats/{token}/{chat_number}/search/{q}", factory=r.chat_factory)
    config.add_route("compat.messages.collection", "/messages", factory=r.compat_messages_factory)
    config.add_route("compat.messages.update", "/messages/{message_number}", factory=r.compat_message_factory)
    config.add_route(
        "compat.messages.item",
        "/messages/{token}/{chat_number}/{message_number}",
        factory=r.message_factory,
    )
    config.add_route(
        "compat.messages.search",
        "/messages/{token}/{chat_number}/search/{q}",
        factory=r.chat_factory,
    )
