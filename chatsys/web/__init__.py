"""The HTTP side of chatsys: two API surfaces over the domain layer.

- The original API at the root paths of the original Rails system, answering as it did
  (``views/original``: Rails-style parameters, bare arrays, 204 on PATCH, its error bodies).
- chatsys's own API under ``/v1`` (``views/v1``): strict validation against the OpenAPI document,
  envelopes with cursor pagination, ``Idempotency-Key``, one JSON error shape.

Both are thin adapters: they parse a request, call a domain module (``chatsys.domain``) and shape
its answer.  This package holds what they share: routes, resources, validation, pagination,
errors, the OpenAPI document, metrics and the request's database session.
"""

from __future__ import annotations

import orjson
from pyramid.renderers import JSON

from chatsys.runtime.services import Services

PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dumps(value, default=None) -> bytes:
    # orjson writes the same compact UTF-8 JSON as json.dumps(ensure_ascii=False) in a twentieth of
    # the time; datetimes and dataclasses still go to Pyramid's ``default`` (adapters), as they
    # would with json.dumps.  (docs/decisions.md, "Responses are serialised by orjson".)
    return orjson.dumps(
        value, default=default, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    )


def includeme(config) -> None:
    services: Services = config.registry["services"]
    # Built now, in the one thread that builds the app, not by the first requests in parallel.
    services.engine, services.read_engine, services.allocator, services.search  # noqa: B018
    config.add_request_method(lambda request: request.registry["services"], "services", reify=True)
    config.add_renderer("json", JSON(serializer=_dumps))
    config.include(".database")
    config.include(".metrics")
    config.include(".openapi")
    config.include(".validation")
    config.include(".params")
    config.include(".search")
    config.include(".routes")
    config.include(".views.health")
    config.scan(".views")
