"""Small helpers for driving the API in tests."""

from __future__ import annotations

from typing import Any


def create_application(testapp, name: str = "acme") -> dict[str, Any]:
    return testapp.post_json("/v1/applications", {"name": name}, status=201).json


def create_chat(testapp, token: str, name: str | None = "general", **kw) -> dict[str, Any]:
    body = {} if name is None else {"name": name}
    return testapp.post_json(f"/v1/applications/{token}/chats", body, status=201, **kw).json


def create_message(testapp, token: str, chat: int, body: str, **kw) -> dict[str, Any]:
    return testapp.post_json(f"/v1/applications/{token}/chats/{chat}/messages", {"body": body}, status=201, **kw).json


def chat_url(token: str, chat: int) -> str:
    return f"/v1/applications/{token}/chats/{chat}"


def messages_url(token: str, chat: int) -> str:
    return f"/v1/applications/{token}/chats/{chat}/messages"
