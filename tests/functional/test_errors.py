"""Every error has one JSON shape and the right status, and changes nothing."""

import pytest
import webtest
from sqlalchemy import text

from tests.conftest import make_app
from tests.support.api import create_application, create_chat, create_message

JSON = "application/json"


@pytest.fixture
def chat(testapp):
    token = create_application(testapp)["app_token"]
    create_chat(testapp, token)
    create_message(testapp, token, 1, "existing")
    return token


def snapshot(engine):
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
            for t in ("applications", "chats", "messages", "outbox_events", "idempotency_keys")
        } | {"bodies": conn.execute(text("SELECT GROUP_CONCAT(body) FROM messages")).scalar_one()}


def error_of(res):
    """The /v1 error object of a response."""
    assert res.content_type == JSON
    assert set(res.json) == {"error"}
    assert {"code", "message"} <= set(res.json["error"])
    return res.json["error"]


BODY_CASES = [
    # (name, raw body, content type, status, code, field)
    ("malformed json", b'{"body": ', JSON, 400, "malformed_json", None),
    ("trailing garbage", b'{"body": "x"} x', JSON, 400, "malformed_json", None),
    ("duplicate keys", b'{"body": "a", "body": "b"}', JSON, 400, "malformed_json", None),
    ("NaN", b'{"body": NaN}', JSON, 400, "malformed_json", None),
    ("invalid utf-8", b'{"body": "\xff\xfe"}', JSON, 400, "malformed_json", None),
    ("deep nesting", b"[" * 100000 + b"]" * 100000, JSON, 413, "payload_too_large", None),
    ("nested but small", b'{"body": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON, 400, "malformed_json", None),
    ("missing field", b"{}", JSON, 422, "validation_failed", "body"),
    ("empty field", b'{"body": ""}', JSON, 422, "validation_failed", "body"),
    ("blank field", b'{"body": "   "}', JSON, 422, "validation_failed", "body"),
    ("wrong type", b'{"body": 5}', JSON, 422, "validation_failed", "body"),
    ("null", b'{"body": null}', JSON, 422, "validation_failed", "body"),
    ("too long", b'{"body": "' + b"x" * 10001 + b'"}', JSON, 422, "validation_failed", "body"),
    ("unknown field", b'{"body": "x", "admin": true}', JSON, 422, "validation_failed", "admin"),
    ("NUL byte", b'{"body": "a\\u0000b"}', JSON, 422, "validation_failed", "body"),
    ("lone surrogate", b'{"body": "a\\ud800b"}', JSON, 422, "validation_failed", "body"),
    ("array body", b'["x"]', JSON, 422, "validation_failed", "$"),
    ("over 64 KiB", b'{"body": "' + b"x" * 70000 + b'"}', JSON, 413, "payload_too_large", None),
    ("form encoded", b"body=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type", None),
    ("text/plain", b'{"body": "x"}', "text/plain", 415, "unsupported_media_type", None),
]


@pytest.mark.parametrize("name,raw,ctype,status,code,field", BODY_CASES, ids=[c[0] for c in BODY_CASES])
def test_bad_message_bodies(testapp, engine, chat, name, raw, ctype, status, code, field):
    before = snapshot(engine)
    res = testapp.post(f"/v1/applications/{chat}/chats/1/messages", raw, content_type=ctype, status=status)
    error = error_of(res)
    assert error["code"] == code
    if field is not None:
        assert error["details"][0]["field"] == field
        assert field in error["message"]
    assert snapshot(engine) == before


@pytest.mark.parametrize("name,raw,ctype,status,code,field", BODY_CASES, ids=[c[0] for c in BODY_CASES])
def test_bad_edit_bodies(testapp, engine, chat, name, raw, ctype, status, code, field):
    before = snapshot(engine)
    res = testapp.patch(f"/v1/applications/{chat}/chats/1/messages/1", raw, content_type=ctype, status=status)
    assert error_of(res)["code"] == code
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/nowhere", 404),
        ("GET", "/v1/applications/" + "x" * 5000, 404),
        ("GET", "/v1/applications/{t}/chats/1/messages/99", 404),
        ("GET", "/v1/applications/{t}/chats/2", 404),
        ("GET", "/v1/applications/{t}/chats/-1", 404),
        ("GET", "/v1/applications/{t}/chats/1.5", 404),
        ("GET", "/v1/applications/{t}/chats/18446744073709551617", 404),
        ("GET", "/v1/applications/{t}/chats/1/messages/%2e%2e%2f%2e%2e", 404),
        ("GET", "/v1/applications/..%2f..%2fetc%2fpasswd", 404),
        ("PUT", "/v1/applications/{t}", 405),
        ("PUT", "/v1/applications/{t}/chats/1/messages/1", 405),
        ("DELETE", "/v1/applications", 405),
        ("GET", "/v1/applications/{t}/chats/1/messages?limit=0", 422),
        ("GET", "/v1/applications/{t}/chats/1/messages?limit=abc", 422),
        ("GET", "/v1/applications/{t}/chats/1/messages?after=-1", 422),
        ("GET", "/v1/applications/{t}/chats/1/messages?after=99999999999999999999999", 422),
        ("GET", "/v1/applications/{t}/chats/1/messages?after=1&before=5", 422),
    ],
)
def test_paths_methods_and_parameters(testapp, engine, chat, method, path, status):
    before = snapshot(engine)
    res = testapp.request(path.replace("{t}", chat), method=method, status=status, expect_errors=True)
    error = error_of(res)
    if status == 405:
        assert method not in res.headers["Allow"]
    assert "Traceback" not in res.text
    assert snapshot(engine) == before
    assert error["code"]


def test_content_type_with_charset_is_accepted(testapp, chat):
    testapp.post(
        f"/v1/applications/{chat}/chats/1/messages",
        b'{"body": "ok"}',
        content_type="application/json; charset=utf-8",
        status=201,
    )


def test_idempotency_key_header_is_validated(testapp, engine, chat):
    before = snapshot(engine)
    res = testapp.post_json(
        f"/v1/applications/{chat}/chats/1/messages",
        {"body": "x"},
        headers={"Idempotency-Key": "has space"},
        status=422,
    )
    assert error_of(res)["details"][0]["field"] == "Idempotency-Key"
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/applications/%ff"),
        ("GET", "/v1/applications/%C3"),
        ("PATCH", "/v1/applications/{t}%ff"),
        ("GET", "/v1/applications/{t}/chats/1/messages/%ff"),
        ("POST", "/v1/applications/{t}/chats/1/messages/%e9t%e9"),
        ("GET", "/v1/applications/{t}/chats/1/messages?limit=%ff"),
        ("GET", "/v1/applications/{t}/chats/1/messages/search?q=%ff"),
        ("GET", "/v1/applications/{t}/chats/1/messages/search?q=wor%C3"),
        ("GET", "/chats/{t}/1/search/%ff"),
    ],
)
def test_a_url_that_is_not_utf8_is_a_400_and_no_incident(testapp, engine, chat, caplog, method, path):
    before = snapshot(engine)
    res = testapp.request(path.replace("{t}", chat), method=method, status=400, expect_errors=True)
    if path.startswith("/v1/"):
        assert error_of(res)["code"] == "malformed_url"
    else:  # the original API's shape
        assert res.json == {"message": "The path or query string is not valid UTF-8 once percent-decoded."}
    assert snapshot(engine) == before
    # Not an unhandled error: nothing logged at ERROR, no traceback.
    assert [r for r in caplog.records if r.levelno >= 40] == []


def test_a_decoding_error_of_the_service_is_still_a_500(settings, clean, monkeypatch, caplog):
    from chatsys.domain import applications

    def broken():
        return b"\xff".decode("utf-8")

    monkeypatch.setattr(applications, "new_token", broken)
    res = webtest.TestApp(make_app(settings)).post_json("/v1/applications", {"name": "x"}, status=500)
    assert res.json["error"]["code"] == "internal_error"
    assert any(r.levelno >= 40 and r.exc_info for r in caplog.records)


def test_the_access_log_names_routes_never_paths(testapp, chat, caplog):
    """One line per request with the route's pattern: the application token, its only
    credential, is never written to the log, and an undecodable path is no trouble."""
    with caplog.at_level("INFO", logger="chatsys.access"):
        testapp.get(f"/v1/applications/{chat}/chats/1", status=200)
        testapp.get(f"/chats/{chat}/1", status=200)
        testapp.get("/v1/applications/%ffab%C3", status=400)
        testapp.get(f"/nowhere/{chat}", status=404)
    lines = [r.getMessage() for r in caplog.records if r.name == "chatsys.access"]
    assert len(lines) == 4, lines
    assert lines[0].startswith("GET /v1/applications/{token}/chats/{chat_number} status=200 ms=")
    assert lines[1].startswith("GET /chats/{app_token}/{number} status=200 ms=")
    assert lines[2].startswith("GET unmatched status=400 ms=")  # a path routing cannot decode
    assert lines[3].startswith("GET unmatched status=404 ms=")
    assert not any(chat in r.getMessage() for r in caplog.records)
