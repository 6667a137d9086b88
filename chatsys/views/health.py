"""Liveness and readiness probes."""

import logging

from pyramid.view import view_config
from sqlalchemy import text

from chatsys.redis import get_redis

log = logging.getLogger(__name__)

READYZ_KEY_TTL_MS = 60_000


@view_config(route_name="health", request_method="GET", renderer="json")
def health(request):
    return {"status": "ok"}


def _check(name: str, probe, checks: dict) -> None:
    try:
        probe()
        checks[name] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log only
        log.warning("readiness check %s failed: %s", name, exc.__class__.__name__)
        checks[name] = "unavailable"


def _mysql(request):
    with request.registry["db_engine"].connect() as conn:
        conn.execute(text("SELECT 1"))


def _redis(request):
    """A write, not a PING: a Redis at its memory limit, or a replica after a failover, answers
    PING but refuses the allocator's writes."""
    key = f"{request.registry.settings['redis.key_prefix']}:readyz"
    get_redis(request.registry).set(key, b"1", px=READYZ_KEY_TTL_MS)


@view_config(route_name="ready", request_method="GET", renderer="json")
def ready(request):
    checks: dict[str, str] = {}
    _check("mysql", lambda: _mysql(request), checks)
    _check("redis", lambda: _redis(request), checks)
    broker = request.registry.get("broker_probe")
    if broker is not None:
        _check("rabbitmq", broker, checks)
    search = request.search
    if search.name != "database":
        _check(search.name, search.check, checks)
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        request.response.status = 503
        request.response.headers["Retry-After"] = "5"
    return {"status": "ok" if ok else "unavailable", "checks": checks}
