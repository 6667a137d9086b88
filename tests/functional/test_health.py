"""Probes, docs, and 503 (never a stack trace) when MySQL or Redis cannot be reached."""

import shutil
import subprocess

import pytest
import redis
import webtest
from sqlalchemy import text

from tests.conftest import make_app
from tests.support.net import free_port
from tests.support.wait import wait_for
from tests.support.webapp import CheckedTestApp

DEAD_MYSQL = "mysql+pymysql://root@127.0.0.1:1/nowhere?charset=utf8mb4"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_and_readyz(testapp):
    assert testapp.get("/healthz").json == {"status": "ok"}
    res = testapp.get("/readyz")
    assert res.json["status"] == "ok"
    assert res.json["checks"]["mysql"] == "ok" and res.json["checks"]["redis"] == "ok"


def test_openapi_document_and_docs_are_served(testapp):
    spec = testapp.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/v1/applications/{token}/chats/{chat_number}/messages/search" in spec["paths"]
    page = testapp.get("/docs")
    assert "swagger-ui" in page.text
    testapp.get("/docs/static/swagger-ui-bundle.js", status=200)


def test_mysql_down_is_503_with_retry_after(settings, clean):
    app = CheckedTestApp(make_app(settings, **{"sqlalchemy.url": DEAD_MYSQL}))
    res = app.post_json("/v1/applications", {"name": "x"}, status=503)
    assert res.headers["Retry-After"]
    assert res.json["error"]["code"] == "service_unavailable"
    assert "127.0.0.1" not in res.text and "pymysql" not in res.text.lower()
    app.get("/v1/applications/abc", status=503)
    ready = app.get("/readyz", status=503)
    assert ready.json["checks"]["mysql"] == "unavailable"


def test_redis_down_is_503_and_writes_nothing(settings, clean, testapp, engine):
    from sqlalchemy import text

    token = testapp.post_json("/v1/applications", {"name": "x"}).json["app_token"]
    testapp.post_json(f"/v1/applications/{token}/chats", {}, status=201)
    app = CheckedTestApp(make_app(settings, **{"redis.url": DEAD_REDIS}))
    res = app.post_json(f"/v1/applications/{token}/chats/1/messages", {"body": "x"}, status=503)
    assert res.headers["Retry-After"]
    assert app.get("/readyz", status=503).json["checks"]["redis"] == "unavailable"
    # Reads do not need Redis.
    app.get(f"/v1/applications/{token}/chats/1/messages", status=200)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 0


def test_unexpected_errors_are_500_without_internals(settings, clean, monkeypatch):
    from chatsys.domain import applications

    def broken():
        raise ValueError("secret internals")

    monkeypatch.setattr(applications, "new_token", broken)
    app = webtest.TestApp(make_app(settings))
    res = app.post_json("/v1/applications", {"name": "x"}, status=500)
    assert res.json["error"]["code"] == "internal_error"
    assert "secret" not in res.text and "Traceback" not in res.text


@pytest.fixture(params=["memory limit", "replica"])
def refusing_redis(request, tmp_path):
    """A Redis of the test's own that answers PING but refuses writes: at its memory limit under
    ``noeviction`` (OOM), or a replica of an unreachable primary (READONLY).  Yields its URL and a
    client; the refusal ends when the test sets ``maxmemory`` back to 0 or makes it a primary."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH to start a Redis of its own (not in the compose test image)")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        wait_for(lambda: _pings(client), timeout=10, message="redis-server up")
        if request.param == "memory limit":
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", 1)
        else:
            client.replicaof("127.0.0.1", free_port())
        yield f"redis://127.0.0.1:{port}/0", client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.exceptions.ConnectionError:
        return False


def test_a_redis_that_refuses_writes_is_503_and_not_ready(settings, clean, testapp, engine, refusing_redis):
    url, server = refusing_redis
    token = testapp.post_json("/v1/applications", {"name": "x"}).json["app_token"]
    testapp.post_json(f"/v1/applications/{token}/chats", {}, status=201)
    app = CheckedTestApp(make_app(settings, **{"redis.url": url, "chatsys.ready_cache_seconds": "0"}))
    assert server.ping()  # it answers: only a write tells that it refuses
    res = app.post_json(f"/v1/applications/{token}/chats/1/messages", {"body": "x"}, status=503)
    assert res.headers["Retry-After"] and res.json["error"]["code"] == "service_unavailable"
    app.post_json(f"/v1/applications/{token}/chats", {}, status=503)
    assert app.get("/readyz", status=503).json["checks"]["redis"] == "unavailable"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM chats")).scalar_one() == 1
    # Once Redis takes writes again, so does the service.
    server.config_set("maxmemory", 0)
    server.replicaof("NO", "ONE")
    created = app.post_json(f"/v1/applications/{token}/chats/1/messages", {"body": "x"}, status=201)
    assert created.json["message_number"] == 1
    assert app.get("/readyz").json["checks"]["redis"] == "ok"


def test_readiness_is_checked_at_most_once_a_second_however_many_ask(settings, clean, monkeypatch):
    """Each check opens connections to MySQL, Redis and RabbitMQ: a burst of probes (several
    load balancers, an attacker) costs the backends one round of checks per second."""
    from chatsys.web.views import health

    calls = []
    real = health.run_checks
    monkeypatch.setattr(health, "run_checks", lambda services: calls.append(1) or real(services))
    app = CheckedTestApp(make_app(settings, **{"chatsys.ready_cache_seconds": "60"}))
    for _ in range(50):
        assert app.get("/readyz").json["status"] == "ok"
    assert len(calls) == 1
