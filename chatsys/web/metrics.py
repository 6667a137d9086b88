"""Prometheus metrics of the web, and one access-log line per request.

:class:`RequestLog` is WSGI middleware around the Pyramid application: it sees each client
request once, whatever pyramid_retry did inside (a create retried after a number conflict is one
line and one observation, with the status the client got).  Lines and labels name the route's
pattern (``/v1/applications/{token}``), never the path: a path holds the application's token,
its only credential.  The method label is one of the methods the API knows, or ``other``, so a
client making up methods cannot grow ``/metrics``.

``/metrics`` serves the request latency histogram (all workers' under ``chatsys-web``, through
prometheus_client's multiprocess mode), the outbox backlog (pending rows, the oldest pending row's
age, parked rows) and the purges in progress (deleted chats and applications not yet erased),
read from MySQL at most once per ``chatsys.metrics_cache_seconds`` however many scrapers ask.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from pyramid.events import BeforeTraversal
from pyramid.response import Response
from sqlalchemy import text

from chatsys.consumers.purger import pending_counts
from chatsys.models import utcnow
from chatsys.models.outbox import PARKED, PENDING

log = logging.getLogger(__name__)
access_log = logging.getLogger("chatsys.access")

REQUEST_SECONDS = Histogram(
    "chatsys_http_request_duration_seconds",
    "Time to answer an HTTP request, by route, method and status class.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ROUTE_KEY = "chatsys.route"  # the environ key where the matched route's pattern is left
UNMATCHED = "unmatched"

OUTBOX_BACKLOG = text(
    "SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox_events "
    f"WHERE status IN ('{PENDING}', '{PARKED}') GROUP BY status"
)


def route_of(request) -> str:
    """What a log line says of a request's path: its route's pattern."""
    route = request.matched_route
    return route.pattern if route is not None else UNMATCHED


class RequestLog:
    """WSGI middleware: one access-log line and one latency observation per client request."""

    def __init__(self, app):
        self.app = app

    @property
    def registry(self):
        """The wrapped Pyramid application's registry."""
        return self.app.registry

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        status = [500]

        def recording_start_response(status_line, headers, exc_info=None):
            status[0] = int(status_line[:3])
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            elapsed = time.perf_counter() - started
            route = environ.get(ROUTE_KEY, UNMATCHED)
            method = environ.get("REQUEST_METHOD", "")
            method = method if method in METHODS else "other"
            REQUEST_SECONDS.labels(route, method, f"{status[0] // 100}xx").observe(elapsed)
            access_log.info("%s %s status=%d ms=%.1f", method, route, status[0], elapsed * 1000)


def remember_route(event: BeforeTraversal) -> None:
    request = event.request
    if request.matched_route is not None:
        request.environ[ROUTE_KEY] = request.matched_route.pattern


class OutboxCollector:
    """The outbox gauges, queried at most once per ``ttl`` seconds."""

    def __init__(self, engine, ttl: float):
        self.engine = engine
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._families: list = []

    def collect(self):
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                self._families = self._query()
                self._at = time.monotonic()
            return list(self._families)

    def _query(self) -> list:
        try:
            with self.engine.connect() as conn:
                rows = {r.status: r for r in conn.execute(OUTBOX_BACKLOG)}
                chats, applications = pending_counts(conn)
        except Exception as exc:  # a scrape must not fail because MySQL is down
            log.warning("outbox metrics unavailable: %s", exc.__class__.__name__)
            return []
        pending = GaugeMetricFamily("chatsys_outbox_pending", "Outbox rows not yet published.")
        age = GaugeMetricFamily(
            "chatsys_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row."
        )
        parked = GaugeMetricFamily("chatsys_outbox_parked", "Outbox rows the relay gave up on (chatsys-deadletters).")
        oldest = rows["pending"].oldest if "pending" in rows else None
        pending.add_metric([], rows["pending"].n if "pending" in rows else 0)
        age.add_metric([], (utcnow() - oldest).total_seconds() if oldest else 0.0)
        parked.add_metric([], rows["parked"].n if "parked" in rows else 0)
        purges = GaugeMetricFamily(
            "chatsys_purges_pending",
            "Deleted chats and applications whose content the purger has not finished erasing.",
            labels=["kind"],
        )
        purges.add_metric(["chat"], chats)
        purges.add_metric(["application"], applications)
        return [pending, age, parked, purges]


def process_metrics() -> bytes:
    """This process's metrics, or all web workers' under chatsys-web (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def metrics_view(request) -> Response:
    body = process_metrics() + generate_latest(request.registry["metrics_registry"])
    return Response(body=body, content_type=CONTENT_TYPE_LATEST.split(";")[0], charset="utf-8")


def includeme(config) -> None:
    settings = config.get_settings()
    app_metrics = CollectorRegistry(auto_describe=False)
    services = config.registry["services"]
    app_metrics.register(OutboxCollector(services.read_engine, settings["chatsys.metrics_cache_seconds"]))
    config.registry["metrics_registry"] = app_metrics
    config.add_subscriber(remember_route, BeforeTraversal)
    config.add_view(metrics_view, route_name="metrics", request_method="GET")
