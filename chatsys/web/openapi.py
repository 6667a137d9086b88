"""The OpenAPI document: loaded once, served at /openapi.json with Swagger UI at /docs, and the
source of the JSON Schemas that validate request bodies (``chatsys.web.validation``)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import yaml
from pyramid.response import Response
from pyramid.static import static_view

SPEC_URI = "urn:chatsys:openapi"


# libyaml's safe loader when PyYAML was built with it: 14 ms for the document instead of 108.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def load_spec() -> dict:
    text = resources.files("chatsys.web").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=SAFE_LOADER)


@cache
def spec_json() -> bytes:
    return json.dumps(load_spec(), separators=(",", ":")).encode()


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chatsys API</title>
<link rel="stylesheet" href="{static}swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{static}swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui"}});</script>
</body></html>
"""


def openapi_json(request) -> Response:
    return Response(body=spec_json(), content_type="application/json", charset="utf-8")


def docs(request) -> Response:
    # Paths, not URLs: nothing of the request's Host header is written into the page.
    page = DOCS_PAGE.format(static=request.route_path("docs.static", subpath=()), spec=request.route_path("openapi"))
    return Response(page, content_type="text/html", charset="utf-8")


def includeme(config) -> None:
    import swagger_ui_bundle

    # Swagger UI's files ship in a PyPI package, so /docs works without reaching a CDN.
    config.add_route("openapi", "/openapi.json")
    config.add_route("docs", "/docs")
    config.add_route("docs.static", "/docs/static/*subpath")
    config.add_view(openapi_json, route_name="openapi", request_method="GET")
    config.add_view(docs, route_name="docs", request_method="GET")
    config.add_view(
        static_view(swagger_ui_bundle.swagger_ui_path, use_subpath=True),
        route_name="docs.static",
        request_method="GET",
    )
