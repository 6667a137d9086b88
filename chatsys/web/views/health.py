"""Liveness and readiness probes.

``/readyz`` checks MySQL, Redis (with a write: a Redis at its memory limit, or a replica after a
failover, answers PING but refuses the allocator's writes), RabbitMQ (a connection) and the
search backend.  Each check opens connections, so a result is reused for
``chatsys.ready_cache_seconds`` (1 s) by every probe of this process, however many ask.
"""

from __future__ import annotations

import logging
import threading
import time

from pyramid.view import view_config
from sqlalchemy import text

log = logging.getLogger(__name__)

READYZ_KEY_TTL_MS = 60_000


@view_config(route_name="health", request_method="GET", renderer="json")
def health(request):
    return {"status": "ok"}


def _mysql(services) -> None:
    with services.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _redis(services) -> None:
    services.redis.set(f"{services.settings['redis.key_prefix']}:readyz", b"1", px=READYZ_KEY_TTL_MS)


def _rabbitmq(services) -> None:
    import pika

    params = services.amqp_parameters("chatsys-readyz")
    params.socket_timeout = 2
    params.stack_timeout = 3
    pika.BlockingConnection(params).close()


def run_checks(services) -> dict[str, str]:
    probes = {"mysql": _mysql, "redis": _redis, "rabbitmq": _rabbitmq}
    search = services.search
    if search.name != "database":
        probes[search.name] = lambda services: search.check()
    checks = {}
    for name, probe in probes.items():
        try:
            probe(services)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log only
            log.warning("readiness check %s failed: %s", name, exc.__class__.__name__)
            checks[name] = "unavailable"
    return checks


class ReadyCache:
    """The last readiness result and when it was taken; one check at a time per process."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.lock = threading.Lock()
        self.at = float("-inf")
        self.checks: dict[str, str] = {}

    def get(self, services) -> dict[str, str]:
        with self.lock:
            if time.monotonic() - self.at >= self.ttl:
                self.checks = run_checks(services)
                self.at = time.monotonic()
            return self.checks


@view_config(route_name="ready", request_method="GET", renderer="json")
def ready(request):
    checks = request.registry["ready_cache"].get(request.services)
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        request.response.status = 503
        request.response.headers["Retry-After"] = "5"
    return {"status": "ok" if ok else "unavailable", "checks": checks}


def includeme(config) -> None:
    config.registry["ready_cache"] = ReadyCache(config.get_settings()["chatsys.ready_cache_seconds"])
