"""Errors of the HTTP layer, with stable codes: a request the service cannot read, a dependency
that is down.  Views raise them; ``views/errors.py`` renders them, and the domain's own errors
(``chatsys.domain.errors``), in each surface's shape.  On /v1 that is one JSON shape:

{"error": {"code": "not_found", "message": "…", "details": …}}
"""

from __future__ import annotations

from typing import Any


class ChatsysError(Exception):
    status = 500
    code = "internal_error"
    message = "Internal server error."

    def __init__(self, message: str | None = None, details: Any = None, headers: dict | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = headers or {}

    def as_json(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class MalformedJSON(ChatsysError):
    status = 400
    code = "malformed_json"
    message = "The request body is not valid JSON."


class MalformedBody(ChatsysError):
    status = 400
    code = "malformed_body"
    message = "The request body cannot be read."


class MalformedURL(ChatsysError):
    status = 400
    code = "malformed_url"
    message = "The path or query string is not valid UTF-8 once percent-decoded."


class NotFound(ChatsysError):
    status = 404
    code = "not_found"
    message = "The resource does not exist."


class MethodNotAllowed(ChatsysError):
    status = 405
    code = "method_not_allowed"
    message = "The method is not allowed on this resource."


class PayloadTooLarge(ChatsysError):
    status = 413
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaType(ChatsysError):
    status = 415
    code = "unsupported_media_type"
    message = "The request body must be application/json."


class ValidationFailed(ChatsysError):
    """422; ``details`` is a list of ``{"field": …, "message": …}``."""

    status = 422
    code = "validation_failed"
    message = "The request is not valid."

    @classmethod
    def for_field(cls, field: str, message: str) -> ValidationFailed:
        return cls(f"{field}: {message}", details=[{"field": field, "message": message}])


class ServiceUnavailable(ChatsysError):
    status = 503
    code = "service_unavailable"
    message = "A backing service is unavailable; retry later."
    retry_after = 1

    def __init__(self, message: str | None = None, details: Any = None, retry_after: int = 1):
        super().__init__(message, details, headers={"Retry-After": str(retry_after)})
