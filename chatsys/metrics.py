"""Prometheus metrics for the web process, and one access-log line per request (chatsys.accesslog).

``/metrics`` serves request latency histograms by route (from a tween), and the outbox backlog
(pending count, oldest pending age, parked count) read from MySQL at scrape time.
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from pyramid.response import Response
from sqlalchemy import text

from chatsys import accesslog
from chatsys.models import utcnow
from chatsys.settings import as_float

log = logging.getLogger(__name__)

REQUEST_SECONDS = Histogram(
    "chatsys_http_request_duration_seconds",
    "Time to answer an HTTP request, by route, method and status class.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

OUTBOX_BACKLOG = text(
    "SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox_events "
    "WHERE status IN ('pending', 'parked') GROUP BY status"
)


class OutboxCollector:
    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        pending = GaugeMetricFamily("chatsys_outbox_pending", "Outbox rows not yet published.")
        age = GaugeMetricFamily(
            "chatsys_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row."
        )
        parked = GaugeMetricFamily("chatsys_outbox_parked", "Outbox rows the relay gave up on (chatsys-deadletters).")
        try:
            with self.engine.connect() as conn:
                rows = {r.status: r for r in conn.execute(OUTBOX_BACKLOG)}
        except Exception as exc:  # a scrape must not fail because MySQL is down
            log.warning("outbox metrics unavailable: %s", exc.__class__.__name__)
            return
        oldest = rows["pending"].oldest if "pending" in rows else None
        pending.add_metric([], rows["pending"].n if "pending" in rows else 0)
        age.add_metric([], (utcnow() - oldest).total_seconds() if oldest else 0.0)
        parked.add_metric([], rows["parked"].n if "parked" in rows else 0)
        yield from (pending, age, parked)


def metrics_tween_factory(handler, registry):
    def tween(request):
        start = time.perf_counter()
        status = 500
        try:
            response = handler(request)
            status = response.status_int
            return response
        finally:
            elapsed = time.perf_counter() - start
            route = request.matched_route.name if request.matched_route else "unmatched"
            REQUEST_SECONDS.labels(route, request.method, f"{status // 100}xx").observe(elapsed)
            accesslog.record(request.method, accesslog.path_of(request), route, status, elapsed * 1000)

    return tween


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
    app_metrics = CollectorRegistry(auto_describe=False)
    app_metrics.register(OutboxCollector(config.registry["db_engine"]))
    config.registry["metrics_registry"] = app_metrics
    accesslog.configure(as_float(config.get_settings(), "chatsys.access_log_interval"))
    config.add_tween("chatsys.metrics.metrics_tween_factory")
    config.add_view(metrics_view, route_name="metrics", request_method="GET")
