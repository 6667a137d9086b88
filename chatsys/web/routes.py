"""Every route of the service, and nothing else.  Names are ``surface.feature.action``.

Each route lists the methods its views take: a route factory looks the application, chat or
message up only for those, so a method no view takes answers 405 with ``Allow`` (from
``views/errors.py``) rather than a 404 about a token it never needed to read.
"""

from chatsys.web import resources as r

V1_APP = "/v1/applications/{token}"
V1_CHAT = V1_APP + "/chats/{chat_number}"
GET, POST, PATCH, DELETE = ("GET", "HEAD"), ("POST",), ("PATCH",), ("DELETE",)


def guarded(factory, methods):
    def guarded_factory(request):
        return factory(request) if request.method in methods else None

    guarded_factory.__doc__ = factory.__doc__
    return guarded_factory


def includeme(config) -> None:
    def route(name: str, pattern: str, methods: tuple[str, ...], factory=None) -> None:
        config.add_route(name, pattern, factory=guarded(factory, methods) if factory else None)

    config.add_route("health", "/healthz")
    config.add_route("ready", "/readyz")
    config.add_route("metrics", "/metrics")

    # The demo page (views/demo.py) and its static files: a client of the public /v1 API only.
    config.add_route("demo", "/demo")
    config.add_route("demo.static", "/demo/static/*subpath")

    # chatsys's own API.
    route("v1.applications.collection", "/v1/applications", POST)
    route("v1.applications.item", V1_APP, GET + PATCH + DELETE, r.application)
    route("v1.chats.collection", V1_APP + "/chats", GET + POST, r.application)
    route("v1.chats.item", V1_CHAT, GET + PATCH + DELETE, r.chat)
    route("v1.messages.collection", V1_CHAT + "/messages", GET + POST, r.messages)
    # Before messages.item, so that "search" is not taken for a message number.
    route("v1.messages.search", V1_CHAT + "/messages/search", GET, r.chat)
    route("v1.messages.item", V1_CHAT + "/messages/{message_number}", GET + PATCH + DELETE, r.message)

    # The original API: the paths and methods of the original system's config/routes.rb, plus the
    # search path its README gives.
    route("original.applications.collection", "/applications", POST)
    route("original.applications.item", "/applications/{app_token}", GET + PATCH, r.original_application)
    route("original.applications.chats", "/applications/{app_token}/chats", GET, r.original_application)
    route("original.chats.collection", "/chats", POST, r.original_application)
    route("original.chats.update", "/chats/{number}", PATCH, r.original_chat)
    route("original.chats.item", "/chats/{app_token}/{number}", GET, r.original_chat)
    route("original.chats.messages", "/chats/{app_token}/{number}/messages", GET, r.original_chat_messages)
    route("original.chats.search", "/chats/{app_token}/{chat_number}/search/{q}", GET, r.original_message_chat)
    route("original.messages.collection", "/messages", POST, r.original_new_message)
    route("original.messages.update", "/messages/{number}", PATCH, r.original_message)
    route("original.messages.item", "/messages/{app_token}/{chat_number}/{number}", GET, r.original_message)
    route("original.messages.search", "/messages/{app_token}/{chat_number}/search/{q}", GET, r.original_message_chat)
