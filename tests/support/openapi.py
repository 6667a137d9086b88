"""Check every response a test sees against the service's OpenAPI document."""

from __future__ import annotations

import json
from functools import cache
from urllib.parse import parse_qsl, urlsplit

import jsonschema
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from chatsys.web.openapi import load_spec
from chatsys.web.views.errors import ORIGINAL_ROOTS


@cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(load_spec())


def _documented(method: str, path: str) -> bool:
    spec = load_spec()
    for template, item in spec["paths"].items():
        if method.lower() not in item:
            continue
        parts, want = path.strip("/").split("/"), template.strip("/").split("/")
        if len(parts) == len(want) and all(w.startswith("{") or w == p for p, w in zip(parts, want, strict=True)):
            return True
    return False


def check_response(method: str, url: str, status: int, content_type: str, body: bytes) -> None:
    """Raise if the response does not match the document.

    Requests the document does not describe (a wrong method, an unknown path) must still answer
    with an error shape: the original API's under its paths, /v1's elsewhere.
    """
    parts = urlsplit(url)
    if parts.path in ("/openapi.json", "/metrics", "/demo") or parts.path.startswith(("/docs", "/demo/static/")):
        return
    if not _documented(method, parts.path):
        assert content_type == "application/json", (status, content_type)
        original = any(parts.path == root or parts.path.startswith(root + "/") for root in ORIGINAL_ROOTS)
        error_schema = load_spec()["components"]["schemas"]["OriginalError" if original else "Error"]
        jsonschema.validate(json.loads(body), error_schema)
        return
    request = MockRequest("http://localhost", method.lower(), parts.path, args=dict(parse_qsl(parts.query)))
    response = MockResponse(body, status_code=status, content_type=content_type or "")
    openapi().validate_response(request, response)
