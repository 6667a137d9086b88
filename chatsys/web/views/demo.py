"""The /demo page: a chat in the browser over the public /v1 API, nothing else.

The page is static (``chatsys/web/demo/``: HTML, CSS and plain JavaScript, no build step).  This
view only fills in what differs per deployment: where its assets are (with a digest of their
content, so a browser may cache them for long and still never runs a stale script after a
deploy) and the event-stream gateway's base URL (``chatsys.demo_events_url``; empty: the page
polls).  It sends a Content-Security-Policy that lets the page load its own files only and talk
to this origin and the gateway's, so no text a user typed can ever run as script.
"""

from __future__ import annotations

import hashlib
import html
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

from pyramid.response import Response
from pyramid.static import static_view
from pyramid.view import view_config

ASSETS = ("demo.css", "demo.js")
ASSET_MAX_AGE = 365 * 24 * 3600  # the URL changes with the content

_static = static_view("chatsys.web:demo", use_subpath=True, cache_max_age=ASSET_MAX_AGE)


def _file(name: str) -> bytes:
    return resources.files("chatsys.web").joinpath("demo", name).read_bytes()


@cache
def _template() -> str:
    return _file("index.html").decode("utf-8")


@cache
def _digest(name: str) -> str:
    return hashlib.sha256(_file(name)).hexdigest()[:16]


def content_security_policy(events_url: str) -> str:
    connect = "'self'"
    if events_url.startswith(("http://", "https://")):
        parts = urlsplit(events_url)
        connect += f" {parts.scheme}://{parts.netloc}"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@view_config(route_name="demo", request_method=("GET", "HEAD"))
def demo_page(request) -> Response:
    events_url = request.registry.settings["chatsys.demo_events_url"]
    page = _template()
    for name in ASSETS:
        # Paths, not URLs: nothing of the request's Host header is written into the page.
        path = request.route_path("demo.static", subpath=(name,), _query={"v": _digest(name)})
        page = page.replace(f'"{name}"', f'"{html.escape(path, quote=True)}"')
    meta = 'name="chatsys-events-url" content="{}"'
    page = page.replace(meta.format(""), meta.format(html.escape(events_url, quote=True)))
    response = Response(page, content_type="text/html", charset="utf-8")
    response.headers.update(
        {
            "Content-Security-Policy": content_security_policy(events_url),
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        }
    )
    return response


@view_config(route_name="demo.static", request_method=("GET", "HEAD"))
def demo_static(context, request) -> Response:
    response = _static(context, request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
