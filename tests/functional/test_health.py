"""Probes, docs, and 503 (never a stack trace) when MySQL or Redis cannot be reached."""

import webtest

from tests.conftest import make_app
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
    assert "/applications/{token}/chats/{chat_number}/messages/search" in spec["paths"]
    page = testapp.get("/docs")
    assert "swagger-ui" in page.text
    testapp.get("/docs/static/swagger-ui-bundle.js", status=200)


def test_mysql_down_is_503_with_retry_after(settings, clean):
    app = CheckedTestApp(make_app(settings, **{"sqlalchemy.url": DEAD_MYSQL}))
    res = app.post_json("/applications", {"name": "x"}, status=503)
    assert res.headers["Retry-After"]
    assert res.json["error"]["code"] == "service_unavailable"
    assert "127.0.0.1" not in res.text and "pymysql" not in res.text.lower()
    app.get("/applications/abc", status=503)
    ready = app.get("/readyz", status=503)
    assert ready.json["checks"]["mysql"] == "unavailable"


def test_redis_down_is_503_and_writes_nothing(settings, clean, testapp, engine):
    from sqlalchemy import text

    token = testapp.post_json("/applications", {"name": "x"}).json["app_token"]
    testapp.post_json(f"/applications/{token}/chats", {}, status=201)
    app = CheckedTestApp(make_app(settings, **{"redis.url": DEAD_REDIS}))
    res = app.post_json(f"/applications/{token}/chats/1/messages", {"body": "x"}, status=503)
    assert res.headers["Retry-After"]
    assert app.get("/readyz", status=503).json["checks"]["redis"] == "unavailable"
    # Reads do not need Redis.
    app.get(f"/applications/{token}/chats/1/messages", status=200)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one() == 0


def test_unexpected_errors_are_500_without_internals(settings, clean, monkeypatch):
    from chatsys.views import applications

    def broken():
        raise ValueError("secret internals")

    monkeypatch.setattr(applications, "new_token", broken)
    app = webtest.TestApp(make_app(settings))
    res = app.post_json("/applications", {"name": "x"}, status=500)
    assert res.json["error"]["code"] == "internal_error"
    assert "secret" not in res.text and "Traceback" not in res.text
