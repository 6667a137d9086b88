"""Errors of the domain, with stable codes.  Each API surface renders them in its own shape
(``chatsys.web.views.errors``): ``{"error": {"code", "message"}}`` on /v1, the original API's
``{"message": …}`` at the root."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"


class NotFound(DomainError):
    """An application, chat or message that does not exist (``kind`` says which)."""

    code = "not_found"
    MESSAGES = {
        "application": "No application has this token.",
        "chat": "The application has no chat with this number.",
        "message": "The chat has no message with this number.",
    }

    def __init__(self, kind: str):
        super().__init__(self.MESSAGES[kind])
        self.kind = kind


class Deleted(NotFound):
    """An application, chat or message that was deleted: gone as if it never existed (404), with a
    code that says so."""

    code = "deleted"
    MESSAGES = {
        "application": "The application was deleted.",
        "chat": "The chat was deleted.",
        "message": "The message was deleted.",
    }


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used with a different request body.")
