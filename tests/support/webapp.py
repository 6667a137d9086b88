"""A WebTest TestApp that checks every response a test sees: it matches the OpenAPI document,
and it leaks nothing internal (no database id, no stack trace, no SQL, no driver names)."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import webtest

from tests.support.openapi import check_response

LEAKS = re.compile(r"Traceback|File \"/|sqlalchemy|pymysql|\bSELECT\b|\bINSERT INTO\b|\bUPDATE \w+ SET\b", re.I)


def internal_keys(value, path="$") -> list[str]:
    """Paths of keys that look like database ids (``id``, ``*_id``) anywhere in a JSON body."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id" or key.endswith("_id"):
                found.append(f"{path}.{key}")
            found += internal_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += internal_keys(item, f"{path}[{i}]")
    return found


def path_of(request) -> str:
    """The path as sent, percent-encoded (``request.path`` cannot decode one that is not UTF-8)."""
    environ = request.environ
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return quote(raw.encode("latin-1", "replace"), safe="/%")


class CheckedTestApp(webtest.TestApp):
    def do_request(self, req, status=None, expect_errors=None):
        response = super().do_request(req, status=status, expect_errors=expect_errors)
        if response.status_int == 204 or req.method == "HEAD":
            return response
        path, query = path_of(req), req.environ.get("QUERY_STRING")
        url = f"{path}?{query}" if query else path
        check_response(req.method, url, response.status_int, response.content_type, response.body)
        if response.content_type == "application/json" and not path.startswith("/openapi"):
            text = response.body.decode("utf-8")
            assert not LEAKS.search(text), f"internal detail in a response: {text[:500]}"
            assert not internal_keys(json.loads(text)), f"database id in a response: {text[:500]}"
        return response
